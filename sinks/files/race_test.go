//go:build race

package files_test

// raceEnabled makes the slowest exhaustive tests sample instead: the race
// detector multiplies their cost, and the run without it covers every case.
const raceEnabled = true
