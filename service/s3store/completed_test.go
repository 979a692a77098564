package s3store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
)

// stateBytes returns the content of owner's upload id's state object.
func stateBytes(t *testing.T, s *Store, owner, id string) []byte {
	t.Helper()
	key, err := s.stateKey(owner, id)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.c.Client.GetObject(testCtx(t), s.opts.Bucket, key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatalf("GetObject(state): %v", err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("reading the state: %v", err)
	}
	return b
}

// putState writes b as owner's upload id's state object, as a commit that
// died before removing it leaves it.
func putState(t *testing.T, s *Store, owner, id string, b []byte) {
	t.Helper()
	key, err := s.stateKey(owner, id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.c.PutObject(testCtx(t), s.opts.Bucket, key, bytes.NewReader(b), int64(len(b)), "", "", minio.PutObjectOptions{}); err != nil {
		t.Fatalf("PutObject(state): %v", err)
	}
}

// TestLostCommitAnswer commits uploads, then puts back the state the
// commit removed, as when the replica died after the multipart upload
// completed: the client's retry learns that the upload completed, at the
// committed size QueryUpload gives and at an older one, and gets the
// answer the lost one would have been, even with CreateOnly.
func TestLostCommitAnswer(t *testing.T) {
	for _, size := range []int{0, 1, testPart, 2*testPart + 7} {
		s := openStore(t, nil)
		b := data(size, byte(size)+40)
		want := service.Expect{Size: int64(len(b)), HasSize: true, SHA256: sha256.Sum256(b), HasSHA256: true, CreateOnly: true}
		up := begin(t, s, "lost", b, 0)
		writeChunks(t, up, b)
		before := stateBytes(t, s, owner, "lost")
		first, err := up.Commit(testCtx(t), want)
		if err != nil {
			t.Fatalf("size %d: Commit: %v", size, err)
		}
		putState(t, s, owner, "lost", before)

		if got, err := query(t, s, "lost"); err != nil || got != int64(size) {
			t.Errorf("size %d: Query after the lost answer = %d, %v; want %d (complete)", size, got, err, size)
		}
		// A stream that resumes where it was before the commit is sent
		// to the end.
		if size > 0 {
			_, err := s.BeginResumable(testCtx(t), owner, resume("lost", "f", b, 0))
			var ue *service.UploadError
			if !errors.As(err, &ue) || !errors.Is(err, service.ErrOffsetMismatch) || ue.Committed != int64(size) {
				t.Fatalf("size %d: resume at 0 = %v; want ErrOffsetMismatch at %d", size, err, size)
			}
		}
		again := begin(t, s, "lost", b, int64(size))
		if got := again.Written(); got != int64(size) {
			t.Errorf("size %d: Written of the resumed upload = %d, want %d", size, got, size)
		}
		info, err := again.Commit(testCtx(t), want)
		if err != nil {
			t.Fatalf("size %d: Commit of the retry: %v", size, err)
		}
		if info.Name != first.Name || info.Size != first.Size || info.SHA256 != first.SHA256 {
			t.Errorf("size %d: retry's answer = %+v, want the lost one %+v", size, info, first)
		}
		if got := get(t, s, "f"); !bytes.Equal(got, b) {
			t.Errorf("size %d: stored bytes differ", size)
		}
		if _, err := query(t, s, "lost"); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("size %d: Query after the retry's commit = %v, want ErrNotFound", size, err)
		}
		assertClean(t, shared, s)
	}
}

// TestLostCommitAnswerOtherFile puts back the state of a completed upload
// after the file was replaced by another upload: the upload did not
// complete as far as the file shows, so it starts over.
func TestLostCommitAnswerOtherFile(t *testing.T) {
	s := openStore(t, nil)
	b := data(testPart+5, 9)
	up := begin(t, s, "lost", b, 0)
	writeChunks(t, up, b)
	before := stateBytes(t, s, owner, "lost")
	if _, err := up.Commit(testCtx(t), service.Expect{}); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	// The same bytes again, by another upload: not this upload's file.
	other := begin(t, s, "other", b, 0)
	commitAll(t, s, other, b, 0)
	putState(t, s, owner, "lost", before)

	if got, err := query(t, s, "lost"); err != nil || got != int64(testPart) {
		t.Errorf("Query = %d, %v; want the state's %d", got, err, testPart)
	}
	_, err := s.BeginResumable(testCtx(t), owner, resume("lost", "f", b, testPart))
	var ue *service.UploadError
	if !errors.As(err, &ue) || !errors.Is(err, service.ErrOffsetMismatch) || ue.Committed != 0 {
		t.Fatalf("resume = %v; want ErrOffsetMismatch at 0 (start over)", err)
	}
	commitAll(t, s, begin(t, s, "lost", b, 0), b, 0)
	assertClean(t, shared, s)
}

// TestCompleteAnswerLostInTransit completes the multipart upload, as a
// first CompleteMultipartUpload whose answer was lost does, just before
// the commit's own request, which then gets NoSuchUpload (as the client
// library's retry does): the commit succeeds.
func TestCompleteAnswerLostInTransit(t *testing.T) {
	s := openStore(t, nil)
	b := data(2*testPart+3, 11)
	up := begin(t, s, "transit", b, 0)
	writeChunks(t, up, b)
	r := up.(*resumable)
	s.beforeWrite = func(string) {
		ctx := testCtx(t)
		res, err := s.c.ListObjectParts(ctx, s.opts.Bucket, r.final, r.st.S3UploadID, 0, 1000)
		if err != nil {
			t.Errorf("ListObjectParts: %v", err)
			return
		}
		var parts []minio.CompletePart
		for _, p := range res.ObjectParts {
			parts = append(parts, minio.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag})
		}
		if _, err := s.c.CompleteMultipartUpload(ctx, s.opts.Bucket, r.final, r.st.S3UploadID, parts, minio.PutObjectOptions{}); err != nil {
			t.Errorf("CompleteMultipartUpload: %v", err)
		}
	}
	info, err := up.Commit(testCtx(t), service.Expect{})
	s.beforeWrite = nil
	if err != nil {
		t.Fatalf("Commit after the lost answer: %v", err)
	}
	if info.Size != int64(len(b)) || info.SHA256 != sha256.Sum256(b) {
		t.Errorf("Commit = %+v, want the file's size and SHA-256", info)
	}
	if got := get(t, s, "f"); !bytes.Equal(got, b) {
		t.Errorf("stored bytes differ")
	}
	assertClean(t, shared, s)
}
