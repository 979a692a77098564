package diskstore

import "testing"

// TestWriteDoesNotAllocate pins that Write neither copies chunks nor
// allocates, including when it starts writeback.
func TestWriteDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name     string
		interval int64
	}{
		{"writeback every write", 4096},
		{"writeback off", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newStore(t, WithWritebackInterval(tt.interval))
			u, err := s.Create(t.Context(), owner, "f")
			if err != nil {
				t.Fatal(err)
			}
			defer u.Abort()
			chunk := make([]byte, 4096)
			got := testing.AllocsPerRun(100, func() {
				if _, err := u.Write(chunk); err != nil {
					t.Fatal(err)
				}
			})
			if got != 0 {
				t.Errorf("allocations per Write = %v, want 0", got)
			}
			// The kernel accepted every writeback request: it is still on
			// and covers everything written so far.
			wb := &u.(*upload).wb
			if wb.interval != tt.interval || (tt.interval > 0 && wb.start != u.Written()) {
				t.Errorf("writeback interval %d, start %d after %d bytes, want interval %d and start at the end",
					wb.interval, wb.start, u.Written(), tt.interval)
			}
		})
	}
}
