// Package pipelines reads pipeline files. It is the only part of sluice
// that knows YAML: it decodes a file strictly into a Spec (unknown keys,
// wrong types and missing keys are errors), expands ${VAR} references from
// the environment, validates the whole (names, references between steps
// and sinks, expressions type-checked against the records' schema), and
// builds a runnable engine.Pipeline from it.
//
// Every problem is reported with the file, line and column where it was
// written, as FILE:LINE:COL: KEY PATH: MESSAGE, and all problems of a file
// are reported at once (an ErrorList), sorted by position. An error inside
// an expression points at the character inside the expression, whatever
// quoting or block style the YAML used.
//
// Values taken from the environment are treated as secrets: messages show
// the ${VAR} they came from, never the value.
//
// Each kind of source, step and sink is one file here (source_kinesis.go,
// step_window.go, sink_s3.go, …) that declares its spec type, its keys
// (keydef.go: type, required, default, one line of documentation, bound
// to the fields they decode into), its checks and its build; kinds.go
// lists them, and that list drives decoding, validation, Build and
// docs/reference.md. A kind's own package checks its values (a Check on
// its Config returning engine.ConfigErrors named by the file's keys), and
// place.go puts each problem at its key's line and column.
// docs/architecture.md shows how to add a kind.
//
// The flow is Load (or Parse) → Spec → Build → *engine.Pipeline.
// docs/pipeline-file.md is the user's
// reference for the file format this package reads.
package pipelines
