package s3store

import (
	"bytes"
	"errors"
	"testing"

	"github.com/greeter/greeter/service"
)

// begin begins or resumes upload id of b at offset on s.
func begin(t *testing.T, s *Store, id string, b []byte, offset int64) service.ResumableUpload {
	t.Helper()
	up, err := s.BeginResumable(testCtx(t), owner, resume(id, "f", b, offset))
	if err != nil {
		t.Fatalf("BeginResumable(%s at %d): %v", id, offset, err)
	}
	return up
}

// query returns the committed size of upload id.
func query(t *testing.T, s *Store, id string) (int64, error) {
	t.Helper()
	return s.QueryResumable(testCtx(t), owner, id, 0)
}

// commitAll writes b[from:] to up, commits it and checks what is stored.
func commitAll(t *testing.T, s *Store, up service.ResumableUpload, b []byte, from int64) {
	t.Helper()
	writeChunks(t, up, b[from:])
	if _, err := up.Commit(testCtx(t), service.Expect{}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if got := get(t, s, "f"); !bytes.Equal(got, b) {
		t.Fatalf("stored %d bytes that differ from the %d uploaded", len(got), len(b))
	}
}

func TestResumableRoundTrip(t *testing.T) {
	for _, size := range []int{0, 1, testPart - 1, testPart, 3*testPart + 1} {
		s := openStore(t, nil)
		b := data(size, byte(size))
		up := begin(t, s, "up1", b, 0)
		commitAll(t, s, up, b, 0)
		if _, err := query(t, s, "up1"); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("size %d: Query after Commit = %v, want ErrNotFound", size, err)
		}
		assertClean(t, shared, s)
	}
}

// TestResumeCommitsWholeParts suspends uploads at and between part
// boundaries: the committed size is the end of the last whole part, and
// the client resends the rest.
func TestResumeCommitsWholeParts(t *testing.T) {
	b := data(3*testPart+100, 3)
	for _, tt := range []struct {
		name          string
		written       int64
		wantCommitted int64
	}{
		{"nothing", 0, 0},
		{"less than a part", testPart - 1, 0},
		{"at a part boundary", 2 * testPart, 2 * testPart},
		{"mid-part", 2*testPart + testPart/2, 2 * testPart},
		{"all but the tail", 3 * testPart, 3 * testPart},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, nil)
			up := begin(t, s, "id", b, 0)
			writeChunks(t, up, b[:tt.written])
			if err := up.Suspend(); err != nil {
				t.Fatalf("Suspend: %v", err)
			}
			if got := up.Written(); got != tt.wantCommitted {
				t.Errorf("Written after Suspend = %d, want %d", got, tt.wantCommitted)
			}
			if err := up.Suspend(); err != nil {
				t.Errorf("second Suspend: %v", err)
			}
			got, err := query(t, s, "id")
			if err != nil || got != tt.wantCommitted {
				t.Fatalf("Query = %d, %v; want %d", got, err, tt.wantCommitted)
			}
			if tt.written != tt.wantCommitted {
				_, err := s.BeginResumable(testCtx(t), owner, resume("id", "f", b, tt.written))
				var ue *service.UploadError
				if !errors.As(err, &ue) || !errors.Is(err, service.ErrOffsetMismatch) || ue.Committed != tt.wantCommitted {
					t.Fatalf("resume at %d = %v, want ErrOffsetMismatch at %d", tt.written, err, tt.wantCommitted)
				}
			}
			up = begin(t, s, "id", b, tt.wantCommitted)
			if up.Written() != tt.wantCommitted {
				t.Errorf("Written after resume = %d, want %d", up.Written(), tt.wantCommitted)
			}
			commitAll(t, s, up, b, tt.wantCommitted)
			assertClean(t, shared, s)
		})
	}
}

func TestBeginResumableErrors(t *testing.T) {
	s := openStore(t, nil, func(o *Options) { o.MaxUploadsPerOwner = 2 })
	b := data(testPart+1, 4)
	held := begin(t, s, "held", b, 0)
	defer held.Abort()
	other := data(10, 5)
	otherUp := begin(t, s, "other", other, 0)
	if err := otherUp.Suspend(); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		r    service.Resume
		want error
	}{
		{"busy in this process", resume("held", "f", b, 0), service.ErrUploadBusy},
		{"other name", resume("other", "g", other, 0), service.ErrUploadMismatch},
		{"other size", resume("other", "f", other[:5], 0), service.ErrUploadMismatch},
		{"other sha256", resume("other", "f", data(10, 6), 0), service.ErrUploadMismatch},
		{"offset past committed", resume("other", "f", other, 5), service.ErrOffsetMismatch},
		{"offset of a new upload", resume("new", "f", b, 5), service.ErrOffsetMismatch},
		{"too many uploads", resume("third", "f", b, 0), service.ErrTooManyUploads},
		{"bad id", resume("bad/id", "f", b, 0), service.ErrInvalidUploadID},
	} {
		_, err := s.BeginResumable(testCtx(t), owner, tt.r)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
	if _, err := query(t, s, "never"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Query(never) = %v, want ErrNotFound", err)
	}
	if _, err := s.QueryResumable(testCtx(t), "someone else", "other", 0); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("another owner's Query = %v, want ErrNotFound", err)
	}
}

func TestResumableDigestMismatchDiscards(t *testing.T) {
	s := openStore(t, nil)
	b := data(2*testPart+10, 7)
	r := resume("id", "f", b, 0)
	r.Want.SHA256[0] ^= 1 // declared wrongly
	up, err := s.BeginResumable(testCtx(t), owner, r)
	if err != nil {
		t.Fatal(err)
	}
	writeChunks(t, up, b)
	if _, err := up.Commit(testCtx(t), service.Expect{}); !errors.Is(err, service.ErrDigestMismatch) {
		t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Stat(testCtx(t), owner, "f"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Stat = %v, want ErrNotFound", err)
	}
	if _, err := query(t, s, "id"); !errors.Is(err, service.ErrNotFound) {
		t.Errorf("Query = %v, want ErrNotFound", err)
	}
	assertClean(t, shared, s)
}

func TestResumableCommitTooEarlySuspends(t *testing.T) {
	s := openStore(t, nil)
	b := data(2*testPart+10, 8)
	up := begin(t, s, "id", b, 0)
	writeChunks(t, up, b[:testPart+5])
	if _, err := up.Commit(testCtx(t), service.Expect{}); !errors.Is(err, service.ErrSizeMismatch) {
		t.Fatalf("Commit = %v, want ErrSizeMismatch", err)
	}
	if got, err := query(t, s, "id"); err != nil || got != testPart {
		t.Fatalf("Query = %d, %v; want %d", got, err, testPart)
	}
	commitAll(t, s, begin(t, s, "id", b, testPart), b, testPart)
}

func TestResumableAbort(t *testing.T) {
	s := openStore(t, nil)
	b := data(2*testPart+10, 9)
	up := begin(t, s, "id", b, 0)
	writeChunks(t, up, b[:testPart+1])
	if err := up.Abort(); err != nil {
		t.Fatal(err)
	}
	if err := up.Abort(); err != nil {
		t.Errorf("second Abort: %v", err)
	}
	if _, err := up.Write([]byte{1}); err == nil {
		t.Error("Write after Abort succeeded")
	}
	assertClean(t, shared, s)
}

// TestResumeAfterMultipartUploadVanished aborts an upload's multipart
// upload behind the store's back, as a lifecycle rule or MinIO's own purge
// does: resuming it must start over (the client resends from 0), not take
// the dead upload over and fail at its first part.
func TestResumeAfterMultipartUploadVanished(t *testing.T) {
	b := data(2*testPart+10, 10)
	for _, tt := range []struct {
		name   string
		offset int64 // where the client resumes
	}{
		{"resumed at the committed size", testPart},
		{"started again at 0", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := openStore(t, nil)
			up := begin(t, s, "id", b, 0)
			writeChunks(t, up, b[:testPart+testPart/2])
			if err := up.Suspend(); err != nil {
				t.Fatal(err)
			}
			key, err := s.objectKey(owner, "f")
			if err != nil {
				t.Fatal(err)
			}
			if err := shared.Client().RemoveIncompleteUpload(testCtx(t), shared.Bucket, key); err != nil {
				t.Fatalf("aborting the multipart upload behind the store's back: %v", err)
			}
			if keys := incompleteUploads(t, shared, s); len(keys) > 0 {
				t.Fatalf("multipart uploads left after the abort: %q", keys)
			}
			if tt.offset != 0 {
				_, err := s.BeginResumable(testCtx(t), owner, resume("id", "f", b, tt.offset))
				var ue *service.UploadError
				if !errors.As(err, &ue) || !errors.Is(err, service.ErrOffsetMismatch) || ue.Committed != 0 {
					t.Fatalf("resume at %d = %v, want ErrOffsetMismatch at 0", tt.offset, err)
				}
				if _, err := query(t, s, "id"); !errors.Is(err, service.ErrNotFound) {
					t.Errorf("Query after the vanished upload = %v, want ErrNotFound", err)
				}
			}
			commitAll(t, s, begin(t, s, "id", b, 0), b, 0)
			assertClean(t, shared, s)
		})
	}
}
