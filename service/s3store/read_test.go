package s3store

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
)

func TestChangeDuringDownload(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, s *Store)
	}{
		{"replaced", func(t *testing.T, s *Store) { put(t, s, "f", data(3*mib, 2)) }},
		{"deleted", func(t *testing.T, s *Store) {
			if err := s.Delete(testCtx(t), owner, "f"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, nil)
			first := data(3*mib, 1)
			put(t, s, "f", first)
			f, err := s.Open(testCtx(t), owner, "f")
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, mib)
			if _, err := f.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
			tt.change(t, s)
			// A GET already streaming may deliver the rest of the old
			// version; a new one, as for this jump, must not mix versions.
			n, err := f.ReadAt(buf, 2*mib)
			if !errors.Is(err, service.ErrChanged) {
				t.Fatalf("ReadAt after the change = %d, %v; want ErrChanged", n, err)
			}
			if f.Info().SHA256 == ([32]byte{}) || f.Info().Size != int64(len(first)) {
				t.Errorf("Info changed: %+v", f.Info())
			}
		})
	}
}

func TestReadAtPositions(t *testing.T) {
	s := openStore(t, nil)
	b := data(readWindow+2*mib+3, 5)
	put(t, s, "f", b)
	f, err := s.Open(testCtx(t), owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, tt := range []struct {
		off, n  int
		wantN   int
		wantEOF bool
	}{
		{0, 10, 10, false},
		{10, 100, 100, false},                       // continues the same GET
		{mib, 1000, 1000, false},                    // jumps ahead
		{5, 5, 5, false},                            // jumps back
		{len(b) - 3, 10, 3, true},                   // the end
		{len(b), 10, 0, true},                       // past the end
		{len(b) - 3, 3, 3, false},                   // exactly the end
		{2*mib - 1, 4, 4, false},                    // across the old GET's position
		{len(b) + 10, 1, 0, true},                   // far past
		{readWindow - 100, mib, mib, false},         // across a window's end
		{readWindow + mib - 100, 2000, 2000, false}, // on in the next window
		{0, len(b) + 5, len(b), true},               // several windows at once
	} {
		p := make([]byte, tt.n)
		n, err := f.ReadAt(p, int64(tt.off))
		if n != tt.wantN || (err == io.EOF) != tt.wantEOF || (err != nil && err != io.EOF) {
			t.Errorf("ReadAt(%d bytes at %d) = %d, %v; want %d, EOF %v", tt.n, tt.off, n, err, tt.wantN, tt.wantEOF)
			continue
		}
		if !bytes.Equal(p[:n], b[min(tt.off, len(b)):min(tt.off, len(b))+n]) {
			t.Errorf("ReadAt(%d bytes at %d): wrong bytes", tt.n, tt.off)
		}
	}
}

func TestStatAndOpenErrors(t *testing.T) {
	s := openStore(t, nil)
	ctx := testCtx(t)
	if _, err := s.Stat(ctx, owner, "missing"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Stat(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, owner, "missing"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Open(missing) = %v, want ErrNotFound", err)
	}
	if _, err := s.Stat(ctx, "", "f"); !errors.Is(err, service.ErrInvalidOwner) {
		t.Errorf("Stat with no owner = %v, want ErrInvalidOwner", err)
	}
	if _, err := s.Stat(ctx, strings.Repeat("o", MaxOwnerLen+1), "f"); !errors.Is(err, service.ErrInvalidOwner) {
		t.Errorf("Stat with a long owner = %v, want ErrInvalidOwner", err)
	}
	if _, err := s.Stat(ctx, owner, "../x"); err == nil {
		t.Error("Stat(../x) succeeded")
	}
	// An object some other program put there, without our metadata.
	key, _ := s.objectKey(owner, "foreign")
	if _, err := shared.Client().PutObject(ctx, shared.Bucket, key, strings.NewReader("x"), 1, "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Stat(ctx, owner, "foreign"); !errors.Is(err, errNoMetadata) {
		t.Errorf("Stat(foreign) = %v, want errNoMetadata", err)
	}
}

// TestSlowDownloadLetsWritersThrough keeps a download open after a small
// read, as a slow client does: replacing and deleting the file do not
// wait for it. (MinIO holds a lock until it has written a GET's whole
// answer; one GET to the end of a large file kept writers waiting 30 s.)
func TestSlowDownloadLetsWritersThrough(t *testing.T) {
	s := openStore(t, nil)
	put(t, s, "f", data(3*readWindow, 1))
	f, err := s.Open(testCtx(t), owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(make([]byte, 8<<10), 0); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 10*time.Second)
	defer cancel()
	if err := s.Delete(ctx, owner, "f"); err != nil {
		t.Fatalf("Delete during a slow download = %v, want it done at once", err)
	}
}

// requests returns a context that counts the HTTP requests made with it.
func requests(ctx context.Context) (context.Context, *atomic.Int64) {
	n := new(atomic.Int64)
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(httptrace.GotConnInfo) { n.Add(1) }}), n
}

// A download read as fast as it arrives asks for up to getRange bytes per
// GET, not one GET per window; after the reader stalls past the stall
// limit the GET is closed and the next window gets a new one, which goes
// on with the same bytes.
func TestDownloadGETs(t *testing.T) {
	s := openStore(t, nil)
	b := data(3*readWindow+100, 2)
	put(t, s, "f", b)
	ctx, n := requests(testCtx(t))

	s.stallLimit.Store(int64(time.Hour)) // however slow the machine, no stall
	f, err := s.Open(ctx, owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opened := n.Load()
	got := make([]byte, len(b))
	if _, err := f.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Fatal("the download differs from the file")
	}
	if gets := n.Load() - opened; gets != 1 {
		t.Errorf("a %d-byte download read at once made %d GETs, want 1", len(b), gets)
	}
	f.Close()

	s.stallLimit.Store(int64(time.Millisecond))
	stalled := make(chan struct{}, 1)
	s.onStall = func() { stalled <- struct{}{} }
	g, err := s.Open(ctx, owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	opened = n.Load()
	head := make([]byte, 8<<10)
	if _, err := g.ReadAt(head, 0); err != nil {
		t.Fatal(err)
	}
	select { // the reader stalls: the readahead closes its GET
	case <-stalled:
	case <-ctx.Done():
		t.Fatal("the readahead never closed the GET of a stalled reader")
	}
	s.stallLimit.Store(int64(time.Hour)) // the rest is read without a stall
	rest := make([]byte, len(b)-len(head))
	if _, err := g.ReadAt(rest, int64(len(head))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(append(head, rest...), b) {
		t.Fatal("the download with a stall differs from the file")
	}
	if gets := n.Load() - opened; gets != 2 {
		t.Errorf("a download that stalled once made %d GETs, want 2", gets)
	}
}
