//go:build race

package testnode

// raceEnabled builds the server with -race too when the suite runs with
// -race, so races inside a node under cluster load are caught as well.
const raceEnabled = true
