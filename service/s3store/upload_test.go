package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"testing"

	"github.com/greeter/greeter/service"
)

// TestSizedRoundTrip uploads files of declared sizes, whose parts stream.
func TestSizedRoundTrip(t *testing.T) {
	s := openStore(t, nil)
	for _, size := range []int{0, testPart, testPart + 1, 2 * testPart, 3*testPart - 1} {
		b := data(size, byte(size))
		up, err := s.CreateSized(testCtx(t), owner, "f", int64(size))
		if err != nil {
			t.Fatal(err)
		}
		writeChunks(t, up, b)
		info, err := up.Commit(testCtx(t), service.Expect{Size: int64(size), HasSize: true})
		if err != nil || info.SHA256 != sha256.Sum256(b) {
			t.Fatalf("size %d: Commit = %+v, %v", size, info, err)
		}
		if got := get(t, s, "f"); !bytes.Equal(got, b) {
			t.Errorf("size %d: read back %d bytes that differ from the %d written", size, len(got), size)
		}
	}
	assertClean(t, shared, s)
}

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
		// sizedOnly: the case needs a size declared at CreateSized.
		sizedOnly bool
	}{
		{"abort small", 100, func(u service.Upload) error { return u.Abort() }, nil, false},
		{"abort after parts", len(b), func(u service.Upload) error { return u.Abort() }, nil, false},
		{"abort mid-part", testPart + 100, func(u service.Upload) error { return u.Abort() }, nil, false},
		{"too few bytes for the declared size", testPart + 100, func(u service.Upload) error {
			_, err := u.Commit(t.Context(), service.Expect{})
			return err
		}, service.ErrSizeMismatch, true},
		{"digest mismatch", len(b), func(u service.Upload) error {
			_, err := u.Commit(t.Context(), service.Expect{SHA256: [32]byte{1}, HasSHA256: true})
			return err
		}, service.ErrDigestMismatch, false},
		{"size mismatch", len(b), func(u service.Upload) error {
			_, err := u.Commit(t.Context(), service.Expect{Size: 1, HasSize: true})
			return err
		}, service.ErrSizeMismatch, false},
		{"cancelled commit", len(b), func(u service.Upload) error {
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			_, err := u.Commit(ctx, service.Expect{})
			return err
		}, context.Canceled, false},
	}
	for _, sized := range []bool{false, true} {
		for _, tt := range tests {
			if tt.sizedOnly && !sized {
				continue
			}
			t.Run(fmt.Sprintf("%s/sized=%t", tt.name, sized), func(t *testing.T) {
				var up service.Upload
				var err error
				if sized {
					up, err = s.CreateSized(testCtx(t), owner, "f", int64(len(b)))
				} else {
					up, err = s.Create(testCtx(t), owner, "f")
				}
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
// file, for a plain upload of unknown size, and by far less than one part
// when the size is known and the parts stream.
func TestUploadMemoryBounded(t *testing.T) {
	b := data(64*mib, 9)
	for _, tt := range []struct {
		name   string
		create func(s *Store) (service.Upload, error)
		limit  int64 // bytes the live heap may grow by
	}{
		// One part buffer plus the client's and the race detector's
		// overhead; the whole file would be 64 MiB.
		{"plain", func(s *Store) (service.Upload, error) { return s.Create(t.Context(), owner, "f") }, 3 * testPart},
		// No part buffer: what the pipe hands on and the connection's
		// buffers.
		{"plain sized", func(s *Store) (service.Upload, error) {
			return s.CreateSized(t.Context(), owner, "f", int64(len(b)))
		}, testPart / 2},
		{"resumable", func(s *Store) (service.Upload, error) {
			return s.BeginResumable(t.Context(), owner, resume("id", "f", b, 0))
		}, testPart / 2},
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
			if growth > tt.limit {
				t.Errorf("live heap grew by %d bytes, want at most %d", growth, tt.limit)
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
