package diskstore

import (
	"crypto/sha256"
	"runtime"
	"slices"
	"testing"

	"github.com/greeter/greeter/service"
)

func TestWritebackRanges(t *testing.T) {
	var w writeback
	var calls [][2]int64
	w.interval = 10
	w.run = func(uintptr) { calls = append(calls, [2]int64{w.start, w.end}) }
	w.rc = fakeRawConn{}
	for _, total := range []int64{3, 9, 10, 15, 19, 20, 45, 46} {
		w.wrote(total)
	}
	want := [][2]int64{{0, 10}, {10, 20}, {20, 45}}
	if !slices.Equal(calls, want) {
		t.Errorf("writeback ranges = %v, want %v", calls, want)
	}
}

// fakeRawConn calls its functions with a dummy descriptor.
type fakeRawConn struct{}

func (fakeRawConn) Control(f func(fd uintptr)) error           { f(0); return nil }
func (fakeRawConn) Read(f func(fd uintptr) (done bool)) error  { return nil }
func (fakeRawConn) Write(f func(fd uintptr) (done bool)) error { return nil }

// TestParallelHashDigest commits uploads written in chunks around the
// parallel-hash threshold, with parallel hashing on and off, and checks
// the stored digest against sha256 of the bytes.
func TestParallelHashDigest(t *testing.T) {
	data := randomData(t, 3<<20+17)
	want := sha256.Sum256(data)
	for _, on := range []bool{true, false} {
		for _, size := range []int{parallelHashMin - 1, parallelHashMin, 256<<10 + 3} {
			s, _ := newStore(t, WithParallelHash(on))
			up, err := s.Create(t.Context(), owner, "f")
			if err != nil {
				t.Fatal(err)
			}
			if parallel := up.(*upload).hashed != nil; parallel != (on && runtime.GOMAXPROCS(0) > 1) {
				t.Errorf("parallel %v, chunk %d: hashing in parallel = %v", on, size, parallel)
			}
			for off := 0; off < len(data); off += size {
				if _, err := up.Write(data[off:min(off+size, len(data))]); err != nil {
					t.Fatal(err)
				}
			}
			info, err := up.Commit(t.Context(), service.Expect{})
			if err != nil {
				t.Fatal(err)
			}
			if info.SHA256 != want {
				t.Errorf("parallel %v, chunk %d: digest %x, want %x", on, size, info.SHA256, want)
			}
		}
	}
}
