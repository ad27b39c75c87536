package autoscale

import (
	"strings"
	"testing"
	"time"
)

func TestParseSpec(t *testing.T) {
	got, err := ParseSpec("stream=sample,min=1,max=16,up=80%,down=20%,window=1m,cooldown=2m")
	want := Spec{Stream: "sample", Min: 1, Max: 16, Up: 80, Down: 20, Window: time.Minute, Cooldown: 2 * time.Minute}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v", got, err)
	}
	// Defaults, spaces and any order.
	got, err = ParseSpec(" max = 4 , stream=clicks,up=90.5%")
	want = Spec{Stream: "clicks", Min: 1, Max: 4, Up: 90.5, Down: 20, Window: time.Minute, Cooldown: 2 * time.Minute}
	if err != nil || got != want {
		t.Fatalf("got %+v, %v", got, err)
	}
	if s := got.String(); s != "stream=clicks,min=1,max=4,up=90.5%,down=20%,window=1m,cooldown=2m" {
		t.Fatalf("String: %s", s)
	}
}

// Every wrong spec is refused with the key at fault and what it wants.
func TestParseSpecErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty; want stream=NAME,max=SHARDS"},
		{"max=4", "no stream; name the stream to scale, such as stream=clicks"},
		{"stream=s", "no max; give the most shards to scale to, such as max=16"},
		{"stream=s,max=4,", `"" is not KEY=VALUE; keys: stream, min, max, up, down, window, cooldown`},
		{"stream=s,max", `"max" is not KEY=VALUE`},
		{"stream=s,max=4,max=5", `"max" is given twice`},
		{"stream=s,max=4,cooldwn=1m", `unknown key "cooldwn"; did you mean cooldown? keys: stream, min, max`},
		{"stream=s,max=4,speed=fast", `unknown key "speed"; keys: stream, min, max`},
		{"stream=s,max=x", `max="x": want a number of shards from 1 to 10000, such as max=4`},
		{"stream=s,max=0", `max="0": want a number of shards from 1 to 10000`},
		{"stream=s,max=10001", `max="10001": want a number of shards`},
		{"stream=s,max=-3", `max="-3": want a number of shards`},
		{"stream=s,max=4,min=8", "min=8 is more than max=4"},
		{"stream=s,max=4,up=80", `up="80": want a percentage of the shards' capacity from 0% to 100%, such as up=80%`},
		{"stream=s,max=4,up=0.8", `up="0.8": want a percentage`},
		{"stream=s,max=4,up=120%", `up="120%": want a percentage`},
		{"stream=s,max=4,up=NaN%", `up="NaN%": want a percentage`},
		{"stream=s,max=4,up=0%", "up=0%: the threshold to grow must be above 0% and at most 100%"},
		{"stream=s,max=4,down=80%", "down=80% must be at least 0% and below up=80%"},
		{"stream=s,max=4,up=10%", "down=20% must be at least 0% and below up=10%"},
		{"stream=s,max=4,window=soon", `window="soon": want a duration such as window=1m`},
		{"stream=s,max=4,window=10ms", "window=10ms must be between 1s and 24h"},
		{"stream=s,max=4,window=25h", "window=25h must be between 1s and 24h"},
		{"stream=s,max=4,cooldown=-1s", "cooldown=-1s must be between 0s and 24h"},
		{"stream=s,max=4,cooldown=1", `cooldown="1": want a duration such as cooldown=2m`},
		{"stream=no spaces,max=4", "stream: "},
		{"stream=,max=4", "stream: "},
		{"stream=s,max=4,up=" + strings.Repeat("9", 200), `…": want a percentage`},
	}
	for _, tc := range tests {
		_, err := ParseSpec(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSpec(%q): %v, want an error with %q", tc.in, err, tc.want)
		}
	}
}

// Any input either fails with an error or gives a valid spec that String
// writes back to the same spec; nothing panics, and errors stay short.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		"stream=sample,min=1,max=16,up=80%,down=20%,window=1m,cooldown=2m",
		"stream=s,max=4",
		"max=2,stream=a.b-c_d,up=99.99%,down=0%,window=1h30m,cooldown=0s",
		"stream=s,max=4,,",
		"stream=s,max=4,up=1e2%",
		"=,=,=",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		sp, err := ParseSpec(in)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Fatalf("error of %d bytes: %.100s…", len(err.Error()), err)
			}
			return
		}
		if err := sp.Validate(); err != nil {
			t.Fatalf("ParseSpec(%q) accepted an invalid spec: %v", in, err)
		}
		again, err := ParseSpec(sp.String())
		if err != nil || again != sp {
			t.Fatalf("%q: String %q parses to %+v, %v; want %+v", in, sp.String(), again, err, sp)
		}
	})
}
