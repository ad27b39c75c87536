//go:build race

package streamstore

// raceEnabled makes the exhaustive crash tests sample instead: the race
// detector multiplies their cost, and the run without it covers every case.
const raceEnabled = true
