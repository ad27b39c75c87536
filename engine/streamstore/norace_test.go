//go:build !race

package streamstore

const raceEnabled = false
