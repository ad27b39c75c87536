// Package sinks groups what delivers records out of a pipeline. Its
// sub-packages are:
//
//   - encode: output formats (JSON lines, Parquet with declared or
//     inferred schemas, the error-output shape) and compressions;
//   - keys: Firehose-style key templates (prefixes), parsed at load time
//     and rendered safely;
//   - buffer: staging, sealing and committing outputs, the durable half of
//     the engine's two-phase commit, and buffer.Sink, the record sink that
//     the files and S3 sinks are with their own publishers;
//   - files: the files sink; s3: the S3 sink; stdout: the debugging sink.
//
// Sinks import the engine, never operators or pipelines: expressions such
// as partition keys reach them as closures.
package sinks
