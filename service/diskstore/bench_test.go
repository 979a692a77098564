package diskstore

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/greeter/greeter/service"
)

// benchFileChunks is how many 1 MiB writes make one file in
// BenchmarkUploadWrite; every file is synced, so the numbers include the
// cost of durability.
const benchFileChunks = 64

// BenchmarkUploadWrite measures uploads in 1 MiB writes, files of
// benchFileChunks MiB each, including the sync at the end of every file:
//
//   - store: Upload.Write and Commit with progressive writeback (default);
//   - store-nowriteback: the same with writeback off;
//   - store-quota: the default with a bytes quota enforced on every Write;
//   - baseline: os.File.Write plus sha256 in the same loop, then Sync.
func BenchmarkUploadWrite(b *testing.B) {
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	b.Run("store", func(b *testing.B) { benchStore(b, chunk) })
	b.Run("store-nowriteback", func(b *testing.B) { benchStore(b, chunk, WithWritebackInterval(0)) })
	// R11: every Write grows the upload's hold under the owner's lock.
	b.Run("store-quota", func(b *testing.B) {
		benchStore(b, chunk, WithQuotas(func(string) service.Quota { return service.Quota{Bytes: 1 << 50} }))
	})
	b.Run("baseline", func(b *testing.B) { benchBaseline(b, chunk) })
}

func benchStore(b *testing.B, chunk []byte, opts ...Option) {
	s, err := Open(b.TempDir(), opts...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	var u service.Upload
	commit := func() {
		if _, err := u.Commit(ctx, service.Expect{}); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.Delete(ctx, "bench", "f"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		u = nil
	}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if u == nil {
			if u, err = s.Create(ctx, "bench", "f"); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := u.Write(chunk); err != nil {
			b.Fatal(err)
		}
		if i++; i%benchFileChunks == 0 {
			commit()
		}
	}
	if u != nil {
		commit()
	}
}

func benchBaseline(b *testing.B, chunk []byte) {
	dir := b.TempDir()
	var f *os.File
	h := sha256.New()
	var sum [32]byte
	n := 0
	finish := func() {
		h.Sum(sum[:0])
		if err := f.Sync(); err != nil {
			b.Fatal(err)
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.Remove(f.Name()); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		f = nil
	}
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if f == nil {
			var err error
			n++
			f, err = os.OpenFile(filepath.Join(dir, fmt.Sprint(n)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			h.Reset()
		}
		if _, err := f.Write(chunk); err != nil {
			b.Fatal(err)
		}
		h.Write(chunk)
		if i++; i%benchFileChunks == 0 {
			finish()
		}
	}
	if f != nil {
		finish()
	}
}
