package s3store

import (
	"bytes"
	"context"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
)

// maxParts is the most parts a multipart upload may have.
const maxParts = 10000

// cleanupTimeout bounds the requests that clean up after a failed or
// cancelled upload, which run without the request's cancellation.
const cleanupTimeout = 30 * time.Second

// minBuffer is the capacity a part buffer starts with.
const minBuffer = 4 << 10

// partBuffer holds the bytes of the part being filled, at most size, for
// a plain upload whose size was not declared (S3 wants a part's length
// before its bytes, so such a part cannot stream; see partStream for the
// rest). It starts small and doubles as bytes arrive; at the store's part
// size it takes a buffer from the store's pool. So a small file costs
// memory in proportion to itself, and a large one exactly one part.
type partBuffer struct {
	s      *Store
	size   int
	b      []byte
	pooled *[]byte // the pool's buffer that b is, if any
}

func (s *Store) newPartBuffer(size int64) *partBuffer {
	return &partBuffer{s: s, size: int(size)}
}

// full reports whether the buffer holds a whole part.
func (p *partBuffer) full() bool { return len(p.b) == p.size }

// bytes returns what the buffer holds.
func (p *partBuffer) bytes() []byte { return p.b }

// fill appends as much of data as fits in the part and returns how much
// it took.
func (p *partBuffer) fill(data []byte) int {
	n := min(len(data), p.size-len(p.b))
	if need := len(p.b) + n; need > cap(p.b) {
		p.grow(need)
	}
	p.b = append(p.b, data[:n]...)
	return n
}

// grow makes room for need bytes, doubling the capacity.
func (p *partBuffer) grow(need int) {
	c := min(max(2*cap(p.b), need, minBuffer), p.size)
	var nb []byte
	var pooled *[]byte
	if int64(c) == p.s.opts.PartSize {
		pooled = p.s.buffers.Get().(*[]byte)
		nb = (*pooled)[:0]
	} else {
		nb = make([]byte, 0, c)
	}
	nb = append(nb, p.b...)
	p.release()
	p.b, p.pooled = nb, pooled
}

// reset empties the buffer, keeping its memory.
func (p *partBuffer) reset() { p.b = p.b[:0] }

// release empties the buffer and gives its memory back.
func (p *partBuffer) release() {
	if p.pooled != nil {
		p.s.buffers.Put(p.pooled)
	}
	p.b, p.pooled = nil, nil
}

// putPart uploads data as part number of the multipart upload uploadID of
// key, once a slot among the store's concurrent part uploads is free.
func (s *Store) putPart(ctx context.Context, key, uploadID string, number int, data []byte) (minio.CompletePart, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return minio.CompletePart{}, ctx.Err()
	}
	defer func() { <-s.sem }()
	p, err := s.c.PutObjectPart(ctx, s.opts.Bucket, key, uploadID, number,
		bytes.NewReader(data), int64(len(data)), minio.PutObjectPartOptions{})
	if err != nil {
		return minio.CompletePart{}, err
	}
	return minio.CompletePart{PartNumber: number, ETag: p.ETag}, nil
}

// fileMetadata is the user metadata that describes a whole file.
func fileMetadata(size int64, sum [32]byte) map[string]string {
	return map[string]string{
		metaSHA256: hex.EncodeToString(sum[:]),
		metaSize:   strconv.FormatInt(size, 10),
	}
}

// uploadMetadata is fileMetadata plus the nonce of the resumable upload
// that publishes the file.
func uploadMetadata(size int64, sum [32]byte, nonce string) map[string]string {
	m := fileMetadata(size, sum)
	m[metaUpload] = nonce
	return m
}

// abortMultipart aborts the multipart upload uploadID of key, without the
// caller's cancellation. An upload that is already gone is not an error.
func (s *Store) abortMultipart(ctx context.Context, key, uploadID string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := s.c.AbortMultipartUpload(ctx, s.opts.Bucket, key, uploadID)
	if err != nil && !isCode(err, codeNoSuchUpload) {
		return err
	}
	return nil
}

// removeKey deletes key without the caller's cancellation. A missing key
// is not an error.
func (s *Store) removeKey(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	return s.c.RemoveObject(ctx, s.opts.Bucket, key, minio.RemoveObjectOptions{})
}
