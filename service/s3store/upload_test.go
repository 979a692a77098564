package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"runtime"
	"strconv"
	"testing"

	"github.com/greeter/greeter/service"
)

func TestRoundTrip(t *testing.T) {
	s := openStore(t, nil)
	for _, size := range []int{0, 1, testPart - 1, testPart, 2 * testPart, 64*mib + 1} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			name := "sizes/" + string(rune('a'+size%26)) + ".bin"
			b := data(size, byte(size))
			info := put(t, s, name, b)
			if info.Size != int64(size) || info.SHA256 != sha256.Sum256(b) {
				t.Fatalf("Commit = %d bytes %x, want %d bytes %x", info.Size, info.SHA256, size, sha256.Sum256(b))
			}
			st, err := s.Stat(testCtx(t), owner, name)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size != int64(size) || st.SHA256 != info.SHA256 || st.Modified.IsZero() {
				t.Errorf("Stat = %+v, want %d bytes %x", st, size, info.SHA256)
			}
			if got := get(t, s, name); !bytes.Equal(got, b) {
				t.Errorf("read back %d bytes that differ from the %d written", len(got), size)
			}
		})
	}
	assertClean(t, shared, s)
}

func TestUploadFailuresLeaveNothing(t *testing.T) {
	s := openStore(t, nil)
	b := data(2*testPart+7, 1)
	tests := []struct {
		name    string
		size    int // bytes written before the end
		end     func(service.Upload) error
		wantErr error
	}{
		{"abort small", 100, func(u service.Upload) error { return u.Abort() }, nil},
		{"abort after parts", len(b), func(u service.Upload) error { return u.Abort() }, nil},
		{"digest mismatch", len(b), func(u service.Upload) error {
			_, err := u.Commit(t.Context(), service.Expect{SHA256: [32]byte{1}, HasSHA256: true})
			return err
		}, service.ErrDigestMismatch},
		{"size mismatch", len(b), func(u service.Upload) error {
			_, err := u.Commit(t.Context(), service.Expect{Size: 1, HasSize: true})
			return err
		}, service.ErrSizeMismatch},
		{"cancelled commit", len(b), func(u service.Upload) error {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := u.Commit(ctx, service.Expect{})
			return err
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, err := s.Create(testCtx(t), owner, "f")
			if err != nil {
				t.Fatal(err)
			}
			writeChunks(t, up, b[:tt.size])
			if err := tt.end(up); !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if err := up.Abort(); err != nil {
				t.Errorf("Abort after the end: %v", err)
			}
			if _, err := s.Stat(testCtx(t), owner, "f"); !errors.Is(err, service.ErrNotFound) {
				t.Errorf("Stat = %v, want ErrNotFound", err)
			}
			assertClean(t, shared, s)
		})
	}
}

func TestReplaceKeepsOneVersion(t *testing.T) {
	s := openStore(t, nil)
	put(t, s, "f", data(3*testPart, 1))
	second := data(10, 2)
	put(t, s, "f", second)
	if got := get(t, s, "f"); !bytes.Equal(got, second) {
		t.Errorf("read %d bytes, want the second version's 10", len(got))
	}
}

func TestNameTooLongForKeys(t *testing.T) {
	s := openStore(t, nil)
	long := ""
	for len(long) < 1000 {
		long += "segment-0123456789/"
	}
	long += "f"
	_, err := s.Create(testCtx(t), owner, long)
	if err == nil || errors.Is(err, service.ErrUnavailable) {
		t.Fatalf("Create of a %d-byte name = %v, want a name error", len(long), err)
	}
}

// TestUploadMemoryBounded uploads 64 MiB, plainly and resumably, and
// checks that the live heap grows by about one part buffer, not by the
// file.
func TestUploadMemoryBounded(t *testing.T) {
	b := data(64*mib, 9)
	for _, tt := range []struct {
		name   string
		create func(s *Store) (service.Upload, error)
	}{
		{"plain", func(s *Store) (service.Upload, error) { return s.Create(t.Context(), owner, "f") }},
		{"resumable", func(s *Store) (service.Upload, error) {
			return s.BeginResumable(t.Context(), owner, resume("id", "f", b, 0))
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, nil)
			chunk := make([]byte, 256<<10)
			heap := func() uint64 {
				runtime.GC()
				runtime.GC() // the second empties sync.Pool's victim cache
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				return m.HeapAlloc
			}
			before := heap()
			up, err := tt.create(s)
			if err != nil {
				t.Fatal(err)
			}
			var peak uint64
			for off := 0; off < len(b); off += len(chunk) {
				copy(chunk, b[off:])
				if _, err := up.Write(chunk); err != nil {
					t.Fatal(err)
				}
				if off%(4*mib) == 0 {
					peak = max(peak, heap())
				}
			}
			if _, err := up.Commit(testCtx(t), service.Expect{}); err != nil {
				t.Fatal(err)
			}
			growth := int64(peak) - int64(before)
			t.Logf("live heap grew by %.1f MiB uploading 64 MiB with %d MiB parts", float64(growth)/mib, testPart/mib)
			// One part buffer plus the client's and the race detector's
			// overhead; the whole file would be 64 MiB.
			if limit := int64(3 * testPart); growth > limit {
				t.Errorf("live heap grew by %d bytes, want at most %d", growth, limit)
			}
		})
	}
}

// TestSmallUploadsHoldLittle keeps 100 small uploads open: together they
// hold far less than one part.
func TestSmallUploadsHoldLittle(t *testing.T) {
	s := openStore(t, nil)
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	before := m.HeapAlloc
	ups := make([]service.Upload, 100)
	for i := range ups {
		up, err := s.Create(t.Context(), owner, "f")
		if err != nil {
			t.Fatal(err)
		}
		up.Write(data(1000, 1))
		ups[i] = up
	}
	runtime.GC()
	runtime.ReadMemStats(&m)
	growth := int64(m.HeapAlloc) - int64(before)
	for _, up := range ups {
		up.Abort()
	}
	if growth > testPart {
		t.Errorf("100 uploads of 1000 bytes hold %d bytes, want less than one part (%d)", growth, testPart)
	}
}
