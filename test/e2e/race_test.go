//go:build race

package e2e

// raceEnabled makes TestMain build the server with -race too, so the suite
// also catches data races inside the node under real load.
const raceEnabled = true
