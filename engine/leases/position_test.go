package leases

import (
	"strings"
	"testing"
	"time"
)

func TestPositionCompare(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"49590338271490256608559692538361571095921575989136588898/0", "49590338271490256608559692538361571095921575989136588898/0", 0},
		{"49590338271490256608559692538361571095921575989136588898/0", "49590338271490256608559692538361571095921575989136588898/3", -1},
		{"9/5", "10/0", -1}, // numeric, not lexical
		{"0010/0", "10/0", 0},
		{"10/2", "9/7", 1},
		{TrimHorizon, "1/0", -1},
		{Latest, TrimHorizon, 0},
		{AtTimestamp, "", 0},
		{ShardEnd, "99999999999999999999999999999999999999999999999999999999/9", 1},
		{ShardEnd, ShardEnd, 0},
	}
	for _, tt := range tests {
		a, err := ParsePosition(tt.a)
		if err != nil {
			t.Fatalf("ParsePosition(%q): %v", tt.a, err)
		}
		b, err := ParsePosition(tt.b)
		if err != nil {
			t.Fatalf("ParsePosition(%q): %v", tt.b, err)
		}
		if got := a.Compare(b); got != tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := b.Compare(a); got != -tt.want {
			t.Errorf("Compare(%q, %q) = %d, want %d", tt.b, tt.a, got, -tt.want)
		}
	}
}

func TestParsePosition(t *testing.T) {
	tests := []struct {
		in      string
		want    Position
		wantErr bool
	}{
		{in: "123/4", want: At("123", 4)},
		{in: "123", want: At("123", 0)},
		{in: ShardEnd, want: Position{Sequence: ShardEnd}},
		{in: "", want: Position{}},
		{in: "12a/0", wantErr: true},
		{in: "/0", wantErr: true},
		{in: "1/-1", wantErr: true},
		{in: "1/x", wantErr: true},
		{in: "../../etc/passwd", wantErr: true},
		{in: "1/2/3", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParsePosition(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParsePosition(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if !tt.wantErr && got != tt.want {
			t.Errorf("ParsePosition(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"1/0", "123", ShardEnd, TrimHorizon, "", "1/2/3", "00/9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		// What parses prints back to something that parses to the same place.
		q, err := ParsePosition(p.String())
		if err != nil {
			t.Fatalf("ParsePosition(%q) = %+v, whose String %q does not parse: %v", s, p, p.String(), err)
		}
		if p.Compare(q) != 0 || q != p {
			t.Fatalf("round trip of %q: %+v became %+v", s, p, q)
		}
	})
}

func TestInitialPositions(t *testing.T) {
	shards := []Shard{
		{ID: "shardId-0", Closed: true},
		{ID: "shardId-1", Parents: []string{"shardId-0"}},
		{ID: "shardId-2"},
	}
	tests := []struct {
		name  string
		start string
		first bool
		want  map[string]string
	}{
		{"trim horizon", TrimHorizon, true, map[string]string{"shardId-0": TrimHorizon, "shardId-1": TrimHorizon, "shardId-2": TrimHorizon}},
		{"latest skips closed shards", Latest, true, map[string]string{"shardId-0": ShardEnd, "shardId-1": Latest, "shardId-2": Latest}},
		{"at timestamp", AtTimestamp, true, map[string]string{"shardId-0": AtTimestamp, "shardId-1": AtTimestamp, "shardId-2": AtTimestamp}},
		{"shards found later read from their start", Latest, false, map[string]string{"shardId-0": TrimHorizon, "shardId-1": TrimHorizon, "shardId-2": TrimHorizon}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := InitialPositions(shards, Position{Sequence: tt.start}, tt.first)
			if len(got) != len(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			for id, w := range tt.want {
				if got[id].Sequence != w {
					t.Errorf("%s starts at %q, want %q", id, got[id].Sequence, w)
				}
			}
		})
	}
}

func TestParseStoreURL(t *testing.T) {
	tests := []struct {
		in      string
		want    StoreURL
		wantErr string
	}{
		{in: "dynamodb://leases", want: StoreURL{Table: "leases"}},
		{in: "dynamodb://my.app-leases_1?worker=w-2&region=eu-west-1&endpoint=http://127.0.0.1:8000&lease_duration=3s",
			want: StoreURL{Table: "my.app-leases_1", Worker: "w-2", Region: "eu-west-1", Endpoint: "http://127.0.0.1:8000", LeaseDuration: 3 * time.Second}},
		{in: "dynamodb://ab", wantErr: "3 to 255"},
		{in: "dynamodb://a/b", wantErr: "3 to 255"},
		{in: "dynamodb://leases?shard=1", wantErr: `unknown parameter "shard"`},
		{in: "dynamodb://leases?endpoint=127.0.0.1:8000", wantErr: "http:// or https://"},
		{in: "dynamodb://leases?lease_duration=10ms", wantErr: "at least 1s"},
		{in: "dynamodb://leases?worker=", wantErr: "non-empty"},
		{in: "dynamodb://leases?worker=a&worker=b", wantErr: "2 times"},
		{in: "./data/checkpoints", wantErr: "dynamodb://TABLE"},
	}
	for _, tt := range tests {
		got, err := ParseStoreURL(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseStoreURL(%q) error = %v, want one mentioning %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseStoreURL(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}
