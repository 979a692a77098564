//go:build !race

// The race detector makes sync.Pool drop items at random, so allocation
// counts are only pinned without it.

package client

import (
	"testing"

	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
)

// TestDownloadReceiveAllocsPerChunk pins the allocations per chunk of the
// client's download receive loop with the codec it forces: the marginal
// cost of 256 more chunks, so the per-stream set-up does not count. grpc's
// proto codec in the same run shows what the codec saves.
func TestDownloadReceiveAllocsPerChunk(t *testing.T) {
	const size, base, more = 256 << 10, 64, 256
	perChunk := map[string]float64{}
	for _, name := range []string{"codec=proto", "codec=transfer"} {
		run := func(chunks int) float64 {
			conn := newChunkConn(size, chunks)
			if name == "codec=proto" {
				conn.override = encoding.GetCodecV2(protocodec.Name)
			}
			return testing.AllocsPerRun(5, func() { downloadChunks(t, conn) })
		}
		perChunk[name] = (run(base+more) - run(base)) / more
	}
	t.Logf("allocations per chunk: %v", perChunk)
	if got := perChunk["codec=transfer"]; got > 0.1 {
		t.Errorf("transfer codec: %.2f allocations per chunk, want none", got)
	}
	if got := perChunk["codec=proto"]; got < 1 {
		t.Errorf("proto codec: %.2f allocations per chunk; the comparison no longer shows what the codec saves", got)
	}
}
