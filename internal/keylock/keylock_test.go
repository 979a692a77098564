package keylock_test

import (
	"sync"
	"testing"

	"github.com/greeter/greeter/internal/keylock"
)

func TestSet(t *testing.T) {
	var s keylock.Set
	if s.IsLocked("a") {
		t.Fatal("zero Set: a is locked")
	}
	if !s.TryLock("a") || s.TryLock("a") || !s.IsLocked("a") {
		t.Fatal("TryLock: want the first to win and the second to fail")
	}
	if !s.TryLock("b") {
		t.Fatal("TryLock of another key failed")
	}
	s.Unlock("a")
	if s.IsLocked("a") || !s.TryLock("a") {
		t.Fatal("after Unlock: a must be free again")
	}
}

func TestSetOneWinner(t *testing.T) {
	var s keylock.Set
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 32 {
		wg.Go(func() {
			if s.TryLock("k") {
				mu.Lock()
				wins++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d goroutines took the same key, want 1", wins)
	}
}
