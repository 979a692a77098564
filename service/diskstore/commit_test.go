package diskstore

import (
	"os"
	"testing"

	"github.com/greeter/greeter/service"
)

func TestCommitSurvivesConcurrentDelete(t *testing.T) {
	// Delete removes folders that became empty. When that happens between
	// Commit's MkdirAll and its Rename, Commit must recreate the folder.
	tests := []struct {
		name     string
		races    int // how many times the folder vanishes before the rename
		wantFail bool
	}{
		{"once", 1, false},
		{"every time", placeAttempts, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var dir string
			races := 0
			s, dir := newStore(t, func(o *options) {
				o.beforeRename = func() {
					if races == tt.races {
						return
					}
					races++
					// A concurrent Delete of the folder's only other file
					// removes the now empty folders.
					for _, d := range []string{"race/sub", "race"} {
						if err := os.Remove(diskPath(dir, owner, d)); err != nil {
							t.Error(err)
						}
					}
				}
			})
			u, err := s.Create(t.Context(), owner, "race/sub/f")
			if err != nil {
				t.Fatal(err)
			}
			u.Write([]byte("x"))
			_, err = u.Commit(t.Context(), service.Expect{})
			if gotFail := err != nil; gotFail != tt.wantFail {
				t.Fatalf("Commit after the folder vanished %d times = %v, want failure %v", races, err, tt.wantFail)
			}
			assertNoTemps(t, dir)
			if !tt.wantFail {
				if got, _ := get(t, s, owner, "race/sub/f"); string(got) != "x" {
					t.Errorf("content = %q, want %q", got, "x")
				}
			}
		})
	}
}
