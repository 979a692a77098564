package storetest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/greeter/greeter/service"
)

// The steps behaviours are made of: uploads, reads and listings through
// the store, and the checks that follow them. Each fails the test with a
// message naming the call.

// chunkSize is how many bytes one Write carries.
const chunkSize = 16 << 10

// write writes b to w in chunks and returns the first error.
func write(w io.Writer, b []byte) error {
	for c := range slices.Chunk(b, chunkSize) {
		if _, err := w.Write(c); err != nil {
			return err
		}
	}
	return nil
}

// expect declares the size and SHA-256 of b.
func expect(b []byte) service.Expect {
	return service.Expect{Size: int64(len(b)), HasSize: true, SHA256: sha256.Sum256(b), HasSHA256: true}
}

// tryPut uploads b as owner's name, committing with want, and returns the
// first error of Create, Write or Commit. A failed upload is aborted.
func (e *env) tryPut(owner, name string, b []byte, want service.Expect) (service.FileInfo, error) {
	e.t.Helper()
	u, err := e.s.Create(e.ctx, owner, name)
	if err != nil {
		return service.FileInfo{}, err
	}
	defer u.Abort()
	if err := write(u, b); err != nil {
		return service.FileInfo{}, err
	}
	return u.Commit(e.ctx, want)
}

// put uploads b as owner's name and checks what Commit reports.
func (e *env) put(owner, name string, b []byte) service.FileInfo {
	e.t.Helper()
	info, err := e.tryPut(owner, name, b, expect(b))
	if err != nil {
		e.t.Fatalf("uploading %q (%d bytes): %v", name, len(b), err)
	}
	if info.Name != name || info.Size != int64(len(b)) || info.SHA256 != sha256.Sum256(b) || info.Modified.IsZero() {
		e.t.Fatalf("Commit of %q = %+v, want its name, size %d, sha256 %x and a time", name, info, len(b), sha256.Sum256(b))
	}
	return info
}

// readAll reads the whole of f, as its Info describes it.
func readAll(f service.File) ([]byte, error) {
	return io.ReadAll(io.NewSectionReader(f, 0, f.Info().Size))
}

// wantFile checks that owner's name holds exactly b, through Stat, Open
// and reading, with the SHA-256 of b recorded.
func (e *env) wantFile(owner, name string, b []byte) {
	e.t.Helper()
	sum := sha256.Sum256(b)
	fi, err := e.s.Stat(e.ctx, owner, name)
	if err != nil {
		e.t.Fatalf("Stat(%q) = %v, want the file", name, err)
	}
	if fi.Name != name || fi.Size != int64(len(b)) || fi.SHA256 != sum || fi.Modified.IsZero() {
		e.t.Fatalf("Stat(%q) = %+v, want size %d, sha256 %x and a time", name, fi, len(b), sum)
	}
	f, err := e.s.Open(e.ctx, owner, name)
	if err != nil {
		e.t.Fatalf("Open(%q) = %v, want the file", name, err)
	}
	defer f.Close()
	if info := f.Info(); info.Size != fi.Size || info.SHA256 != sum {
		e.t.Fatalf("Open(%q).Info() = %+v, want size %d, sha256 %x", name, info, len(b), sum)
	}
	got, err := readAll(f)
	if err != nil {
		e.t.Fatalf("reading %q: %v", name, err)
	}
	if !bytes.Equal(got, b) {
		e.t.Fatalf("%q holds %d bytes (sha256 %x), want the %d uploaded (sha256 %x)", name, len(got), sha256.Sum256(got), len(b), sum)
	}
}

// content returns what owner's name holds, and its Stat.
func (e *env) content(owner, name string) ([]byte, service.FileInfo) {
	e.t.Helper()
	f, err := e.s.Open(e.ctx, owner, name)
	if err != nil {
		e.t.Fatalf("Open(%q) = %v", name, err)
	}
	defer f.Close()
	got, err := readAll(f)
	if err != nil {
		e.t.Fatalf("reading %q: %v", name, err)
	}
	fi, err := e.s.Stat(e.ctx, owner, name)
	if err != nil {
		e.t.Fatalf("Stat(%q) = %v", name, err)
	}
	return got, fi
}

// wantNoFile checks that owner has no file name: Stat and Open fail with
// ErrNotFound and no listing shows it.
func (e *env) wantNoFile(owner, name string) {
	e.t.Helper()
	if fi, err := e.s.Stat(e.ctx, owner, name); !errors.Is(err, service.ErrNotFound) {
		e.t.Fatalf("Stat(%q) = %+v, %v; want ErrNotFound", name, fi, err)
	}
	if f, err := e.s.Open(e.ctx, owner, name); !errors.Is(err, service.ErrNotFound) {
		if err == nil {
			f.Close()
		}
		e.t.Fatalf("Open(%q) = %v, want ErrNotFound", name, err)
	}
	if slices.Contains(e.names(owner, ""), name) {
		e.t.Fatalf("List shows %q, want it absent", name)
	}
}

// names lists every name of owner that starts with prefix, in pages.
func (e *env) names(owner, prefix string) []string {
	e.t.Helper()
	var out []string
	after := ""
	for {
		page, err := e.s.List(e.ctx, owner, prefix, after, 100)
		if err != nil {
			e.t.Fatalf("List(%q, after %q) = %v", prefix, after, err)
		}
		for _, fi := range page {
			out = append(out, fi.Name)
		}
		if len(page) < 100 {
			return out
		}
		after = page[len(page)-1].Name
	}
}

// wantErr fails the test unless err wraps target.
func (e *env) wantErr(op string, err, target error) {
	e.t.Helper()
	if !errors.Is(err, target) {
		e.t.Fatalf("%s = %v, want an error wrapping %q", op, err, target)
	}
}

// resume describes a resumable upload id of b as name, continuing at
// offset.
func resume(id, name string, b []byte, offset int64) service.Resume {
	return service.Resume{ID: id, Name: name, Want: expect(b), Offset: offset}
}

// begin begins or resumes owner's upload r and fails the test on an
// error. The upload is aborted when the test ends unless it ended before.
func (e *env) begin(owner string, r service.Resume) service.ResumableUpload {
	e.t.Helper()
	up, err := e.s.BeginResumable(e.ctx, owner, r)
	if err != nil {
		e.t.Fatalf("BeginResumable(%q at %d) = %v", r.ID, r.Offset, err)
	}
	if got := up.Written(); got != r.Offset {
		e.t.Fatalf("Written of upload %q begun at %d = %d", r.ID, r.Offset, got)
	}
	return up
}

// suspended begins owner's new upload id of b as name, writes its first n
// bytes and suspends it, and returns the committed size the suite then
// expects.
func (e *env) suspended(owner, id, name string, b []byte, n int64) int64 {
	e.t.Helper()
	up := e.begin(owner, resume(id, name, b, 0))
	if err := write(up, b[:n]); err != nil {
		e.t.Fatalf("writing %d bytes to upload %q: %v", n, id, err)
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatalf("Suspend of upload %q = %v", id, err)
	}
	committed := e.kept(n)
	e.wantCommitted(owner, id, 0, committed)
	return committed
}

// wantCommitted checks that QueryResumable of owner's id answers want.
func (e *env) wantCommitted(owner, id string, ttl time.Duration, want int64) {
	e.t.Helper()
	got, err := e.s.QueryResumable(e.ctx, owner, id, ttl)
	if err != nil || got != want {
		e.t.Fatalf("QueryResumable(%q, ttl %v) = %d, %v; want %d, nil", id, ttl, got, err, want)
	}
}

// wantUploadErr fails the test unless err is an *service.UploadError for
// id that wraps target and, when committed is not negative, carries that
// committed size.
func (e *env) wantUploadErr(op string, err error, id string, target error, committed int64) {
	e.t.Helper()
	var upErr *service.UploadError
	if !errors.As(err, &upErr) || !errors.Is(err, target) || upErr.ID != id {
		e.t.Fatalf("%s = %v, want an *service.UploadError for %q wrapping %q", op, err, id, target)
	}
	if committed >= 0 && upErr.Committed != committed {
		e.t.Fatalf("%s = %v: committed size %d, want %d", op, err, upErr.Committed, committed)
	}
}

// wantNoUpload checks that owner has no incomplete upload id (per ttl).
func (e *env) wantNoUpload(owner, id string, ttl time.Duration) {
	e.t.Helper()
	got, err := e.s.QueryResumable(e.ctx, owner, id, ttl)
	if err == nil {
		e.t.Fatalf("QueryResumable(%q, ttl %v) = %d, nil; want ErrNotFound", id, ttl, got)
	}
	e.wantUploadErr("QueryResumable", err, id, service.ErrNotFound, -1)
}
