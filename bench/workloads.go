package main

import "fmt"

// workload is one race: the pipeline file each system runs, and the check
// of their outputs.
type workload struct {
	name, title string
	sluice      string // file under workloads/
	benthos     string // file under workloads/, or empty
	// benthosMissing says why Benthos does not run the workload.
	benthosMissing string
	// targetMBPerCPU, when set, is the MB of input per CPU-second sluice
	// is to reach; the report says whether it did.
	targetMBPerCPU float64
	newCheck       func() check
	check          check
}

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
			name: "c", title: "JSON → Parquet/zstd",
			sluice: "c-parquet.sluice.yaml",
			benthosMissing: "parquet_encode is not part of Benthos's open-source pure and io components " +
				"(it ships with Redpanda Connect, under another licence)",
			newCheck: func() check { return &parquetCheck{} },
		}
	case "d":
		return &workload{
			name: "d", title: fmt.Sprintf("JSON → Arrow IPC, declared columns (target ≥ %d MB per CPU-second)", arrowTarget),
			sluice:         "d-arrow.sluice.yaml",
			benthosMissing: "Benthos's open-source components have no Arrow IPC output",
			targetMBPerCPU: arrowTarget,
			newCheck:       func() check { return newArrowCheck() },
		}
	}
	return nil
}
