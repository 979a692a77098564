package diskstore

import (
	"slices"
	"testing"
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
