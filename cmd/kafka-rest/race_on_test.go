//go:build race

package main

// raceEnabled: the race detector multiplies a process's memory.
const raceEnabled = true
