// Package chaos holds tests that crash several of sluice's parts
// together, as one machine losing power does: the embedded stream store
// and a pipeline reading it (local source, files sink, checkpoint store),
// all on one fsys.Mem, losing power at random file system operations with
// a random part of their unsynced writes kept. The process-level chaos
// run, which SIGKILLs `sluice serve` and `sluice run` processes on
// loopback, is TestChaos in cmd/sluice (make chaos).
//
// The package has no code of its own beyond this comment.
package chaos
