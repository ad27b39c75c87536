package kinesisapi

import (
	"bufio"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-dev/sluice/internal/testwait"
)

// binDir holds the sluice binary that the kill test builds, once per test
// binary; TestMain removes it.
var binDir string

var sluiceBinary = sync.OnceValues(func() (string, error) {
	bin := filepath.Join(binDir, "sluice")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/sluice-dev/sluice/cmd/sluice").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	return bin, nil
})

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "sluice-kinesisapi-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// serveProcess is a `sluice serve` child process.
type serveProcess struct {
	cmd *exec.Cmd
	url string
}

var listenRE = regexp.MustCompile(`Kinesis API on (http://\S+),`)

func startServe(t *testing.T, dir string, args ...string) *serveProcess {
	t.Helper()
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append([]string{"serve", "--listen", "127.0.0.1:0", "--dir", dir}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	url := make(chan string, 1)
	var log strings.Builder
	var logMu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logMu.Lock()
			log.WriteString(sc.Text() + "\n")
			logMu.Unlock()
			if m := listenRE.FindStringSubmatch(sc.Text()); m != nil {
				url <- m[1]
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	p := &serveProcess{cmd: cmd}
	t.Cleanup(func() { p.kill() })
	select {
	case p.url = <-url:
		return p
	case <-time.After(testwait.Patience(t)):
		logMu.Lock()
		defer logMu.Unlock()
		t.Fatalf("sluice serve did not start: %s", log.String())
	}
	return nil
}

func (p *serveProcess) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.cmd.Wait()
	}
}

// killPayload makes a record that carries its own checksum, so that a
// reader can tell a damaged record from a good one.
func killPayload(id int) []byte {
	body := fmt.Sprintf("%d:%s", id, strings.Repeat("x", 50+id%150))
	return []byte(fmt.Sprintf("%s:%08x", body, crc32.ChecksumIEEE([]byte(body))))
}

func checkPayload(b []byte) (int, bool) {
	s := string(b)
	i := strings.LastIndexByte(s, ':')
	if i < 0 {
		return 0, false
	}
	sum, err := strconv.ParseUint(s[i+1:], 16, 32)
	if err != nil || uint32(sum) != crc32.ChecksumIEEE([]byte(s[:i])) {
		return 0, false
	}
	id, err := strconv.Atoi(s[:strings.IndexByte(s, ':')])
	return id, err == nil
}

// SIGKILL during a PutRecords load, then restart: every acknowledged
// record is readable with the sequence number it was acknowledged with,
// and no damaged record is ever served. 20 kill points.
func TestKillDuringLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes")
	}
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	acked := map[int]string{} // id -> sequence number
	var mu sync.Mutex
	nextID := 0
	srv := startServe(t, dir, "--create", "kill:4")
	const kills = 20
	for k := range kills {
		// A load of 4 producers, no retries, until the kill.
		load := kinesis.New(kinesis.Options{
			Region: "us-east-1", BaseEndpoint: aws.String(srv.url),
			Credentials: credentials.NewStaticCredentialsProvider("k", "s", ""),
			Retryer:     aws.NopRetryer{},
		})
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 4 {
			mu.Lock()
			base := nextID
			nextID += 1 << 20
			mu.Unlock()
			wg.Go(func() {
				for b := 0; ctx.Err() == nil; b++ {
					var recs []types.PutRecordsRequestEntry
					var ids []int
					for i := range 100 {
						id := base + b*100 + i
						ids = append(ids, id)
						recs = append(recs, types.PutRecordsRequestEntry{Data: killPayload(id), PartitionKey: aws.String(strconv.Itoa(id))})
					}
					out, err := load.PutRecords(ctx, &kinesis.PutRecordsInput{StreamName: aws.String("kill"), Records: recs})
					if err != nil {
						return // the server is gone
					}
					mu.Lock()
					for i, r := range out.Records {
						if r.SequenceNumber != nil {
							acked[ids[i]] = *r.SequenceNumber
						}
					}
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(20+rng.IntN(250)) * time.Millisecond)
		srv.kill()
		stop()
		wg.Wait()

		srv = startServe(t, dir)
		got := readEverything(t, newClient(srv.url, "", ""), "kill")
		mu.Lock()
		for id, seq := range acked {
			if got[id] != seq {
				t.Fatalf("kill %d: acknowledged record %d (sequence %s) reads back as %q", k, id, seq, got[id])
			}
		}
		t.Logf("kill %d: %d acknowledged records, %d readable", k, len(acked), len(got))
		mu.Unlock()
	}
	if len(acked) < kills*100 {
		t.Fatalf("only %d records were acknowledged over %d runs; the load did not run", len(acked), kills)
	}
}

// readEverything reads every shard of a stream from TRIM_HORIZON and
// returns each record's sequence number by id. It fails on a damaged
// record or a sequence number seen twice.
func readEverything(t *testing.T, c *kinesis.Client, name string) map[int]string {
	t.Helper()
	ctx := context.Background()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	seqs := map[string]bool{}
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(name), ShardId: sh.ShardId, ShardIteratorType: types.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			out, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range out.Records {
				id, ok := checkPayload(r.Data)
				if !ok {
					t.Fatalf("a damaged record was served: %q", r.Data)
				}
				if seqs[*r.SequenceNumber] {
					t.Fatalf("sequence number %s served twice", *r.SequenceNumber)
				}
				seqs[*r.SequenceNumber] = true
				got[id] = *r.SequenceNumber
			}
			if len(out.Records) == 0 {
				break
			}
			iter = out.NextShardIterator
		}
	}
	return got
}
