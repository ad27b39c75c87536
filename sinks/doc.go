// Package sinks groups what delivers records out of a pipeline. Its
// sub-packages are:
//
//   - encode: record encodings (JSON lines, the error-output shape) and
//     output compressions;
//   - keys: Firehose-style key templates (prefixes), parsed at load time
//     and rendered safely;
//   - buffer: staging, sealing and committing outputs, the durable half of
//     the engine's two-phase commit, shared by every buffering sink;
//   - files: the files sink; stdout: the debugging sink.
//
// Sinks import the engine, never operators or pipelines: expressions such
// as partition keys reach them as closures.
package sinks
