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
// The flow is Load (or Parse) → Spec → Build → *engine.Pipeline.
// docs/pipeline-file.md is the user's
// reference for the file format this package reads.
package pipelines
