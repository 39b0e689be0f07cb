// Package lifecycle starts and stops dynkv's background workers (ownership
// handoff, hinted-handoff delivery, anti-entropy) one way: Start runs the
// worker's goroutine once and refuses a second call with an error, Close
// stops it and waits for it.
package lifecycle
