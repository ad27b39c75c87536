package main

import (
	"context"
	"strings"
)

// workload is one race: the pipeline file each system runs, and the check
// of their outputs.
type workload struct {
	name, title string
	sluice      string // file under workloads/
	benthos     string // file under workloads/, or empty
	// benthosMissing says why Benthos does not run the workload.
	benthosMissing string
	// reference runs the single-purpose reference writer (refparquet/)
	// in the same run, for sluice to be compared with.
	reference bool
	// target is sluice's target in MB of input per CPU-second (0: none
	// stated here).
	target float64
	// run, when set, runs sluice on the workload in place of one
	// process on the input file; Benthos and the reference do not.
	run      func(ctx context.Context, o options, w *workload, sluice string, in inputInfo, row *result) (skipped string, err error)
	newCheck func() check
	check    check
}

// dir is the workload's name as it may appear in a file name.
func (w *workload) dir() string { return strings.ReplaceAll(w.name, "'", "-inferred") }

func workloadByName(name string) *workload {
	switch name {
	case "a":
		return &workload{
			name: "a", title: "filter → map → JSON",
			sluice: "a-filter-map.sluice.yaml", benthos: "a-filter-map.benthos.yaml",
			newCheck: func() check { return &filterMapCheck{} },
		}
	case "b":
		return &workload{
			name: "b", title: "1-minute window by path → JSON",
			sluice: "b-window.sluice.yaml", benthos: "b-window.benthos.yaml",
			newCheck: func() check { return &windowCheck{} },
		}
	case "c":
		return &workload{
			name: "c", title: "JSON → Parquet/zstd, declared schema",
			sluice: "c-parquet.sluice.yaml", benthosMissing: parquetMissing,
			reference: true, target: 150,
			newCheck: func() check { return &parquetCheck{} },
		}
	case "c'", "c-inferred":
		return &workload{
			name: "c'", title: "JSON → Parquet/zstd, inferred schema",
			sluice: "c-parquet-inferred.sluice.yaml", benthosMissing: parquetMissing,
			target:   100,
			newCheck: func() check { return &parquetCheck{} },
		}
	case "d":
		return &workload{
			name: "d", title: "JSON → Arrow IPC, declared columns",
			sluice:         "d-arrow.sluice.yaml",
			benthosMissing: "Benthos's open-source components have no Arrow IPC output",
			target:         arrowTarget,
			newCheck:       func() check { return newArrowCheck() },
		}
	case "e":
		return &workload{
			name: "e", title: "whole path: sluice serve (4 shards) → kinesis source → 1-minute window → S3 (s3rver)",
			sluice: "e-path.sluice.yaml", benthosMissing: "not raced: the path is sluice's own servers",
			run:      runPath,
			newCheck: func() check { return &windowCheck{} },
		}
	case "f":
		return &workload{
			name: "f", title: "latency: PutRecord → its 1 s window's row on the pipeline's API",
			sluice: "f-latency.sluice.yaml", benthosMissing: "not raced: the path is sluice's own servers",
			run: func(ctx context.Context, o options, w *workload, sluice string, _ inputInfo, row *result) (string, error) {
				return runLatency(ctx, o, w, sluice, row)
			},
			// The records are made as they are put; the check is in runLatency.
			newCheck: func() check { return noCheck{} },
		}
	}
	return nil
}

// noCheck is the check of a workload that does not read the input file.
type noCheck struct{}

func (noCheck) see(event, []byte)          {}
func (noCheck) verify(string) (int, error) { return 0, nil }

const parquetMissing = "parquet_encode is not part of Benthos's open-source pure and io components " +
	"(it ships with Redpanda Connect, under another licence)"
