package codec

import (
	"math/bits"
	"sync"
)

// Size classes of the pool: powers of two from 4 KiB to 64 MiB. Larger
// buffers are allocated and dropped.
const (
	minClass = 12
	maxClass = 26
)

// pool keeps chunk buffers by power-of-two capacity. It is our own because
// grpc's public pools (mem.NewTieredBufferPool and the default pool) clear
// every buffer on Get, and a chunk buffer is always overwritten in full
// before anyone reads it. It implements mem.BufferPool, so grpc returns
// sent buffers to it.
type pool struct {
	classes [maxClass - minClass + 1]sync.Pool
}

// chunks is the pool every buffer of this package comes from.
var chunks pool

// class returns the index of the size class that holds n bytes, or -1 when
// n is larger than the largest class.
func class(n int) int {
	c := max(bits.Len(uint(n-1)), minClass)
	if n <= 0 {
		c = minClass
	}
	if c > maxClass {
		return -1
	}
	return c - minClass
}

// Get returns a buffer of length n.
func (p *pool) Get(n int) *[]byte {
	c := class(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+minClass))
	return &b
}

// Put returns b to the pool. Buffers whose capacity is not a class size
// (not from Get) are dropped.
func (p *pool) Put(b *[]byte) {
	n := cap(*b)
	c := class(n)
	if c < 0 || n != 1<<(c+minClass) {
		return
	}
	p.classes[c].Put(b)
}

// Buffer returns a buffer of length n from the pool, for a chunk to send
// with SetChunk. A buffer that is not given to a message goes back with
// PutBuffer.
func Buffer(n int) *[]byte { return chunks.Get(n) }

// PutBuffer returns a buffer from Buffer to the pool; b must not be used
// afterwards.
func PutBuffer(b *[]byte) { chunks.Put(b) }
