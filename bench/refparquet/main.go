// Command refparquet is the reference that workload c races: a program
// that does nothing but what c asks, as one would write it by hand for
// these records alone. It decodes the generated JSON lines into a fixed
// struct with goccy/go-json and writes them with parquet-go's typed
// GenericWriter, zstd-compressed, the low-cardinality text columns
// dictionary-encoded, in row groups of about 64 MiB of input, as sluice's
// default buffer and row group sizes do. It keeps no checkpoint, stages
// nothing and does not sync: what it costs is the floor of the work.
//
//	BENCH_INPUT=in.jsonl BENCH_OUTPUT=dir refparquet
package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"

	json "github.com/goccy/go-json"
	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// event is one input record. The columns are those of workload c's
// declared schema, in its order.
type event struct {
	TS        string `json:"ts" parquet:"ts"`
	Method    string `json:"method" parquet:"method,dict"`
	Path      string `json:"path" parquet:"path,dict"`
	Status    int64  `json:"status" parquet:"status"`
	LatencyMS int64  `json:"latency_ms" parquet:"latency_ms"`
	Bytes     int64  `json:"bytes" parquet:"bytes"`
	User      string `json:"user" parquet:"user"`
	Region    string `json:"region" parquet:"region,dict"`
	UserAgent string `json:"user_agent" parquet:"user_agent,dict"`
	RequestID string `json:"request_id" parquet:"request_id"`
}

const (
	rowGroupBytes = 64 << 20
	batchRows     = 1024
)

func main() {
	if err := run(os.Getenv("BENCH_INPUT"), os.Getenv("BENCH_OUTPUT")); err != nil {
		fmt.Fprintln(os.Stderr, "refparquet:", err)
		os.Exit(1)
	}
}

func run(input, outDir string) error {
	if input == "" || outDir == "" {
		return fmt.Errorf("set BENCH_INPUT and BENCH_OUTPUT")
	}
	in, err := os.Open(input)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(filepath.Join(outDir, "reference.parquet"))
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(out, 1<<20)
	w := parquet.NewGenericWriter[event](bw, parquet.Compression(&zstd.Codec{Level: zstd.DefaultLevel, Concurrency: 1}))
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	batch := make([]event, 0, batchRows)
	var group int64
	for sc.Scan() {
		line := sc.Bytes()
		batch = batch[:len(batch)+1]
		ev := &batch[len(batch)-1]
		*ev = event{}
		if err := json.Unmarshal(line, ev); err != nil {
			return fmt.Errorf("decode %q: %w", line, err)
		}
		group += int64(len(line)) + 1
		if len(batch) == cap(batch) {
			if _, err := w.Write(batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
		if group >= rowGroupBytes {
			if _, err := w.Write(batch); err != nil {
				return err
			}
			batch = batch[:0]
			if err := w.Flush(); err != nil {
				return err
			}
			group = 0
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if _, err := w.Write(batch); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return out.Close()
}
