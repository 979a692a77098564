package storetest

import (
	"crypto/sha256"
	"errors"

	"github.com/greeter/greeter/service"
)

// resumableBehaviours are those of resumable uploads that succeed or are
// discarded: suspending, resuming, restarting, verifying and aborting.
var resumableBehaviours = []behaviour{
	{name: "ResumableSuspendResume", run: resumableSuspendResume},
	{name: "ResumableAcrossRestart", run: resumableAcrossRestart},
	{name: "ResumableAfterCrash", run: resumableAfterCrash},
	{name: "ResumableVerification", run: resumableVerification},
	{name: "ResumableAbort", run: resumableAbort},
	{name: "ResumableLostCommitAnswer", run: resumableLostCommitAnswer}, // lostcommit.go
}

// finish resumes owner's upload id of b as name at committed, sends the
// rest and commits it, and checks the file.
func (e *env) finish(owner, id, name string, b []byte, committed int64) {
	e.t.Helper()
	up := e.begin(owner, resume(id, name, b, committed))
	if err := write(up, b[committed:]); err != nil {
		e.t.Fatalf("writing the rest of upload %q: %v", id, err)
	}
	info, err := up.Commit(e.ctx, service.Expect{})
	if err != nil {
		e.t.Fatalf("Commit of upload %q = %v", id, err)
	}
	if info.Name != name || info.Size != int64(len(b)) || info.SHA256 != sha256.Sum256(b) {
		e.t.Fatalf("Commit of upload %q = %+v, want %q of %d bytes, sha256 %x", id, info, name, len(b), sha256.Sum256(b))
	}
	e.wantFile(owner, name, b)
	e.wantNoUpload(owner, id, 0)
}

// resumableSuspendResume suspends an upload part way, and again after
// more bytes, and finishes it: the committed size follows
// Harness.ResumeGranularity, nothing is visible until Commit, and after it
// the upload is gone.
func resumableSuspendResume(e *env) {
	b := data(3*e.block()+e.block()/2, 1)
	up := e.begin(alice, resume("u1", "dir/file.bin", b, 0))
	e.wantCommitted(alice, "u1", 0, 0)
	first := e.block() + e.block()/2
	if err := write(up, b[:first]); err != nil {
		e.t.Fatal(err)
	}
	if got := up.Written(); got != first {
		e.t.Fatalf("Written = %d, want %d", got, first)
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatalf("Suspend = %v", err)
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatalf("second Suspend = %v, want nil", err)
	}
	if _, err := up.Write([]byte("x")); err == nil {
		e.t.Fatal("Write after Suspend = nil error")
	}
	if _, err := up.Commit(e.ctx, service.Expect{}); err == nil {
		e.t.Fatal("Commit after Suspend = nil error")
	}
	committed := e.kept(first)
	e.wantCommitted(alice, "u1", 0, committed)
	e.wantNoFile(alice, "dir/file.bin")
	e.wantErr("Delete of an incomplete upload's name", e.s.Delete(e.ctx, alice, "dir/file.bin"), service.ErrNotFound)

	// A second stream sends a little more and suspends again.
	up = e.begin(alice, resume("u1", "dir/file.bin", b, committed))
	second := 2*e.block() + 1
	if err := write(up, b[committed:second]); err != nil {
		e.t.Fatal(err)
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatal(err)
	}
	committed = e.kept(second)
	e.wantCommitted(alice, "u1", 0, committed)

	up = e.begin(alice, resume("u1", "dir/file.bin", b, committed))
	if err := write(up, b[committed:]); err != nil {
		e.t.Fatal(err)
	}
	info, err := up.Commit(e.ctx, expect(b))
	if err != nil {
		e.t.Fatalf("Commit = %v", err)
	}
	if info.Size != int64(len(b)) || info.SHA256 != sha256.Sum256(b) || info.Modified.IsZero() {
		e.t.Fatalf("Commit = %+v, want %d bytes, sha256 %x and a time", info, len(b), sha256.Sum256(b))
	}
	e.wantFile(alice, "dir/file.bin", b)
	e.wantNoUpload(alice, "u1", 0)
	if err := up.Suspend(); err != nil {
		e.t.Fatalf("Suspend after Commit = %v, want nil", err)
	}
	if err := up.Abort(); err != nil {
		e.t.Fatalf("Abort after Commit = %v, want nil", err)
	}
	e.wantFile(alice, "dir/file.bin", b)

	// The id can be used again, for a new upload.
	c := data(100, 2)
	e.finish(alice, "u1", "again", c, 0)
}

// resumableAcrossRestart suspends an upload, restarts the store and
// finishes the upload on the new one; committed files survive too.
func resumableAcrossRestart(e *env) {
	kept := data(1000, 1)
	e.put(alice, "kept", kept)
	b := data(3*e.block(), 2)
	committed := e.suspended(alice, "r", "f", b, 2*e.block()-1)
	e.restart()
	e.wantFile(alice, "kept", kept)
	e.wantCommitted(alice, "r", 0, committed)
	e.wantNoFile(alice, "f")
	e.finish(alice, "r", "f", b, committed)
}

// resumableAfterCrash abandons an upload without suspending it, as a
// killed process would, and restarts the store: the committed size never
// counts more than was written, keeps to the granularity, and the upload
// continues from it.
func resumableAfterCrash(e *env) {
	b := data(4*e.block(), 1)
	up := e.begin(alice, resume("crash", "f", b, 0))
	written := 2*e.block() + 7
	if err := write(up, b[:written]); err != nil {
		e.t.Fatal(err)
	}
	e.restart() // up is abandoned
	got, err := e.s.QueryResumable(e.ctx, alice, "crash", 0)
	if err != nil {
		e.t.Fatalf("QueryResumable after a crash = %v, want the upload", err)
	}
	if got < 0 || got > written || got%e.unit() != 0 {
		e.t.Fatalf("committed size after a crash = %d; want a multiple of %d no larger than the %d bytes written", got, e.unit(), written)
	}
	e.wantNoFile(alice, "f")
	e.finish(alice, "crash", "f", b, got)
}

// resumableVerification commits uploads whose bytes do not match what
// they declared: a wrong digest discards the upload with
// ErrResumableDigestMismatch, too few bytes keep it, too many fail (at
// Write or Commit, per Harness.WriteChecksSize).
func resumableVerification(e *env) {
	b := data(2*e.block(), 1)

	// Bytes that do not hash to the declared digest, sent over two
	// streams: the upload is discarded, and the error says that it
	// gathered the wrong bytes (ErrResumableDigestMismatch, which is also
	// an ErrDigestMismatch).
	other := data(int64(len(b)), 2)
	committed := e.suspended(alice, "digest", "f", b, e.block()+1)
	up := e.begin(alice, resume("digest", "f", b, committed))
	if err := write(up, other[committed:]); err != nil {
		e.t.Fatal(err)
	}
	_, err := up.Commit(e.ctx, service.Expect{})
	e.wantErr("Commit of other bytes", err, service.ErrResumableDigestMismatch)
	e.wantErr("Commit of other bytes", err, service.ErrDigestMismatch)
	e.wantNoUpload(alice, "digest", 0)
	e.wantNoFile(alice, "f")

	// want, passed to Commit, is checked as well; bytes that match the
	// declared digest but not want are the caller's mismatch, not the
	// upload's.
	up = e.begin(alice, resume("want", "f", b, 0))
	if err := write(up, b); err != nil {
		e.t.Fatal(err)
	}
	wrong := expect(b)
	wrong.SHA256[0] ^= 1
	_, err = up.Commit(e.ctx, wrong)
	e.wantErr("Commit with a want that differs", err, service.ErrDigestMismatch)
	if errors.Is(err, service.ErrResumableDigestMismatch) {
		e.t.Fatalf("Commit with a want that differs = %v; want a plain ErrDigestMismatch, the upload's bytes are right", err)
	}
	e.wantNoFile(alice, "f")

	// Too few bytes: the upload stays, suspended.
	up = e.begin(alice, resume("short", "f", b, 0))
	short := e.block() + 3
	if err := write(up, b[:short]); err != nil {
		e.t.Fatal(err)
	}
	_, err = up.Commit(e.ctx, service.Expect{})
	e.wantErr("Commit of too few bytes", err, service.ErrSizeMismatch)
	e.wantNoFile(alice, "f")
	e.wantCommitted(alice, "short", 0, e.kept(short))
	e.finish(alice, "short", "f", b, e.kept(short))

	// Too many bytes.
	up = e.begin(alice, resume("long", "g", b, 0))
	defer up.Abort()
	werr := write(up, append(b[:len(b):len(b)], 'x'))
	switch {
	case e.h.WriteChecksSize:
		e.wantErr("Write past the declared size", werr, service.ErrSizeMismatch)
	case werr != nil:
		e.t.Fatalf("Write past the declared size = %v; want it taken and refused by Commit (Harness.WriteChecksSize is false)", werr)
	default:
		_, err = up.Commit(e.ctx, service.Expect{})
		e.wantErr("Commit of too many bytes", err, service.ErrSizeMismatch)
	}
	e.wantNoFile(alice, "g")
}

// resumableAbort aborts an upload: its bytes and state are gone, and the
// id begins anew.
func resumableAbort(e *env) {
	b := data(2*e.block(), 1)
	up := e.begin(alice, resume("ab", "f", b, 0))
	if err := write(up, b[:e.block()+1]); err != nil {
		e.t.Fatal(err)
	}
	if err := up.Abort(); err != nil {
		e.t.Fatalf("Abort = %v", err)
	}
	if err := up.Abort(); err != nil {
		e.t.Fatalf("second Abort = %v, want nil", err)
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatalf("Suspend after Abort = %v, want nil", err)
	}
	if _, err := up.Write([]byte("x")); err == nil {
		e.t.Fatal("Write after Abort = nil error")
	}
	e.wantNoUpload(alice, "ab", 0)
	e.wantNoFile(alice, "f")

	// A suspended upload can be aborted by a later stream.
	committed := e.suspended(alice, "ab", "f", b, e.block()+1)
	up = e.begin(alice, resume("ab", "f", b, committed))
	if err := up.Abort(); err != nil {
		e.t.Fatal(err)
	}
	e.wantNoUpload(alice, "ab", 0)
	// committed is at least one unit, as a block is.
	_, err := e.s.BeginResumable(e.ctx, alice, resume("ab", "f", b, committed))
	e.wantUploadErr("BeginResumable of an aborted upload at its old offset", err, "ab", service.ErrOffsetMismatch, 0)
	e.finish(alice, "ab", "f", b, 0)
}
