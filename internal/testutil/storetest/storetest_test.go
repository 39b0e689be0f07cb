package storetest

import (
	"testing"

	"github.com/dynkv/dynkv/vclock"
)

func TestOpenedStoreServesAndSurvivesAReopen(t *testing.T) {
	dir := t.TempDir()
	s := Open(t, Options(dir))
	if _, _, err := s.Put(0, []byte("k"), "a", vclock.Context{}, vclock.Sibling{Value: []byte("v")}); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if err := s.Close(); err != nil { // the cleanup then finds it closed: not an error
		t.Fatalf("Close: %v", err)
	}
	s = Open(t, Options(dir))
	set, err := s.Get(0, []byte("k"))
	if err != nil {
		t.Fatalf("Get after reopen: %v", err)
	}
	if live := set.Live(0); len(live) != 1 || string(live[0].Value) != "v" {
		t.Fatalf("after reopen: %+v, want one sibling \"v\"", live)
	}
}
