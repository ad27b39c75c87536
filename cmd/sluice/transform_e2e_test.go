package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// transformKillHandler is a Firehose transformation Lambda handler: it
// drops every tenth record from the fourth, fails every tenth from the
// eighth, and upper-cases the others with a partition key of n mod 3.
const transformKillHandler = `
import base64, json
def lambda_handler(event, context):
    out = []
    for r in event["records"]:
        rec = json.loads(base64.b64decode(r["data"]))
        n = int(rec["line"][4:])
        if n % 10 == 3:
            out.append({"recordId": r["recordId"], "result": "Dropped"})
        elif n % 10 == 7:
            out.append({"recordId": r["recordId"], "result": "ProcessingFailed", "data": r["data"]})
        else:
            rec["upper"] = rec["line"].upper()
            out.append({"recordId": r["recordId"], "result": "Ok",
                        "data": base64.b64encode(json.dumps(rec).encode()).decode(),
                        "metadata": {"partitionKeys": {"bucket": str(n % 3)}}})
    return {"records": out}
`

// TestTransformExactlyOnceThroughSIGKILL runs a Python handler through the
// wrapper of examples/ as a transform step before the files sink, kills
// `sluice run` at random moments, and checks that each record ends where
// its handler's answer puts it, once: Ok records under the partition the
// handler named, with its data; ProcessingFailed ones in the error
// output; Dropped ones nowhere.
func TestTransformExactlyOnceThroughSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes; not in -short")
	}
	bin, err := sluiceBinary()
	if err != nil {
		t.Fatal(err)
	}
	wrapper, err := filepath.Abs("../../examples/transform/lambda_wrapper.py")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	writeFile(t, filepath.Join(dir, "in", "input.log"), "")
	writeFile(t, filepath.Join(dir, "handler.py"), transformKillHandler)
	pipeline := filepath.Join(dir, "p.yaml")
	writeFile(t, pipeline, fmt.Sprintf(`name: transform-kill
source:
  files: {paths: ["%s/*.log"]}
  decode: lines
checkpoint: {store: %s, interval: 100ms}
steps:
  - name: lambda
    transform:
      command: [python3, %s, handler.lambda_handler]
      buffer: {size: 0.2MB, interval: 0s}
sinks:
  - name: out
    files:
      dir: %s
      prefix: "bucket=!{partitionKeyFromLambda:bucket}/"
      error_prefix: "errors/!{firehose:error-output-type}/"
    format: json
    buffer: {records: 700, interval: 200ms}
`, filepath.Join(dir, "in"), filepath.Join(dir, "ckpt"), wrapper, out))

	// The writer appends numbered lines while sluice runs and is killed.
	stop := make(chan struct{})
	written := make(chan int)
	go func() {
		f, err := os.OpenFile(filepath.Join(dir, "in", "input.log"), os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			panic(err)
		}
		defer f.Close()
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		next := 0
		for {
			select {
			case <-stop:
				written <- next
				return
			case <-tick.C:
			}
			var b strings.Builder
			for range 40 {
				fmt.Fprintf(&b, "rec-%07d\n", next)
				next++
			}
			if _, err := f.WriteString(b.String()); err != nil {
				panic(err)
			}
		}
	}()

	// Each run is killed at a random moment after it has delivered
	// something of its own, so that every SIGKILL lands in a run that
	// was moving records through the handler and committing outputs,
	// however slowly the machine starts python.
	delivered := func() int {
		records, errs := outputLines(t, out)
		return len(records) + len(errs)
	}
	rng := rand.New(rand.NewPCG(17, 3))
	var stderr lockedBuffer
	const kills = 7
	for kill := range kills {
		before := delivered()
		cmd := exec.Command(bin, "run", "--status", "off", pipeline)
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitFor(t, fmt.Sprintf("run %d to deliver past the %d outputs before it", kill+1, before), stderr.String, func() bool { return delivered() > before })
		time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", kill, err)
		}
		_ = cmd.Wait()
	}
	close(stop)
	total := <-written

	wantOK, wantFailed := 0, 0
	for i := range total {
		switch i % 10 {
		case 3:
		case 7:
			wantFailed++
		default:
			wantOK++
		}
	}
	// What the killed runs delivered: the last run must deliver the rest.
	before, _ := outputLines(t, out)
	runUntil(t, bin, dir, os.Environ(), func() bool {
		records, errs := outputLines(t, out)
		return len(records) >= wantOK && len(errs) >= wantFailed
	}, pipeline)

	// Ok records: once each, with the handler's data, under its partition.
	seen := map[int]int{}
	bucketDir := regexp.MustCompile(`^bucket=(\d)$`)
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		m := bucketDir.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		records, _ := outputLines(t, filepath.Join(out, e.Name()))
		for _, line := range records {
			var r struct{ Line, Upper string }
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("output is not JSON: %q", line)
			}
			var n int
			if _, err := fmt.Sscanf(r.Line, "rec-%d", &n); err != nil || r.Upper != strings.ToUpper(r.Line) {
				t.Fatalf("not the handler's data: %q", line)
			}
			if fmt.Sprint(n%3) != m[1] || n%10 == 3 || n%10 == 7 {
				t.Fatalf("record %d under %s", n, e.Name())
			}
			seen[n]++
		}
	}
	// ProcessingFailed records: once each in the error output, as sent.
	failedLines, err := filepath.Glob(filepath.Join(out, "errors", "processing-failed", "*"))
	if err != nil || len(failedLines) == 0 {
		t.Fatalf("no processing-failed output: %v\n%s", err, tail(stderr.String(), 3000))
	}
	failed := map[int]int{}
	_, errLines := outputLines(t, out)
	for _, line := range errLines {
		var f struct{ Type, Stage, Error, Data string }
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("error output is not JSON: %q", line)
		}
		var rec struct{ Line string }
		var n int
		if err := json.Unmarshal([]byte(f.Data), &rec); err != nil || f.Type != "processing-failed" || f.Stage != "lambda" {
			t.Fatalf("error output: %q", line)
		}
		if _, err := fmt.Sscanf(rec.Line, "rec-%d", &n); err != nil || n%10 != 7 {
			t.Fatalf("failed record %q", line)
		}
		failed[n]++
	}
	var missing, dup []int
	for i := range total {
		got := seen[i] + failed[i]
		switch {
		case i%10 == 3 && got != 0:
			dup = append(dup, i)
		case i%10 != 3 && got == 0:
			missing = append(missing, i)
		case got > 1:
			dup = append(dup, i)
		}
	}
	if len(missing) > 0 || len(dup) > 0 || len(seen) != wantOK || len(failed) != wantFailed {
		t.Fatalf("%d ok (want %d), %d failed (want %d); %d missing (first %v), %d duplicated or dropped records delivered (first %v)\nstderr:\n%s",
			len(seen), wantOK, len(failed), wantFailed, len(missing), missing[:min(5, len(missing))], len(dup), dup[:min(5, len(dup))], tail(stderr.String(), 3000))
	}
	t.Logf("%d delivered before the last run", len(before))
	t.Logf("%d records: %d Ok in their partitions, %d ProcessingFailed in the error output, the rest dropped, exactly once through %d SIGKILLs", total, wantOK, wantFailed, kills)
}
