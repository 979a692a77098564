//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only pinned without it.

package service

import (
	"testing"
)

// TestUploadReceiveAllocsPerChunk pins the allocations per chunk of the
// server's upload receive loop with the transfer codec: the marginal cost
// of 256 more chunks, so the per-stream set-up does not count. The proto
// codec's count in the same run shows what the codec saves.
func TestUploadReceiveAllocsPerChunk(t *testing.T) {
	const size, base, more = 256 << 10, 64, 256
	s := New(nil, Options{})
	perChunk := map[string]float64{}
	for _, c := range receiveCodecs {
		few := testing.AllocsPerRun(5, func() { receiveChunks(t, s, c.codec, size, base) })
		many := testing.AllocsPerRun(5, func() { receiveChunks(t, s, c.codec, size, base+more) })
		perChunk[c.name] = (many - few) / more
	}
	t.Logf("allocations per chunk: %v", perChunk)
	if got := perChunk["codec=transfer"]; got > 0.1 {
		t.Errorf("transfer codec: %.2f allocations per chunk, want none", got)
	}
	if got := perChunk["codec=proto"]; got < 1 {
		t.Errorf("proto codec: %.2f allocations per chunk; the comparison no longer shows what the codec saves", got)
	}
}
