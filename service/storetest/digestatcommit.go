package storetest

import (
	"crypto/sha256"

	"github.com/greeter/greeter/service"
)

// digestAtCommitRows are those of resumable uploads begun without a
// SHA-256, whose client hashes while it sends and declares the digest
// only in the Commit that completes the upload (the upload trailer).
var digestAtCommitRows = []behaviour{
	{name: "DigestAtCommitAcrossRestart", run: digestAtCommitAcrossRestart},
	{name: "DigestAtCommitMismatch", run: digestAtCommitMismatch},
	{name: "DigestAtCommitDeclarationsStay", run: digestAtCommitDeclarationsStay},
}

// resumeNoDigest describes a resumable upload id of b as name, continuing
// at offset, that declares its size but not its SHA-256.
func resumeNoDigest(id, name string, b []byte, offset int64) service.Resume {
	return service.Resume{ID: id, Name: name, Want: service.Expect{Size: int64(len(b)), HasSize: true}, Offset: offset}
}

// digestOnly is the want of a Commit that declares only the SHA-256 of b.
func digestOnly(b []byte) service.Expect {
	return service.Expect{SHA256: sha256.Sum256(b), HasSHA256: true}
}

// beginNoDigest begins owner's upload r without a SHA-256. On a store
// that states it cannot (Harness.DigestAtCommit false) it checks that
// BeginResumable fails with service.ErrDigestRequired and leaves no upload,
// and returns nil.
func (e *env) beginNoDigest(owner string, r service.Resume) service.ResumableUpload {
	e.t.Helper()
	if e.h.DigestAtCommit {
		return e.begin(owner, r)
	}
	up, err := e.s.BeginResumable(e.ctx, owner, r)
	if err == nil {
		up.Abort()
		e.t.Fatalf("BeginResumable(%q) without a sha256 = nil error on a store that states !DigestAtCommit", r.ID)
	}
	e.wantErr("BeginResumable without a sha256", err, service.ErrDigestRequired)
	e.wantNoUpload(owner, r.ID, 0)
	return nil
}

// digestAtCommitAcrossRestart begins an upload without a SHA-256, suspends
// it, restarts the store, resumes it (still without one) and sends the
// rest: a Commit without a digest keeps the upload, and one with the
// digest of the whole file publishes it.
func digestAtCommitAcrossRestart(e *env) {
	b := data(3*e.block()+5, 1)
	up := e.beginNoDigest(alice, resumeNoDigest("nd", "f", b, 0))
	if up == nil {
		return
	}
	first := e.block() + 3
	if err := write(up, b[:first]); err != nil {
		e.t.Fatal(err)
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatalf("Suspend = %v", err)
	}
	committed := e.kept(first)
	e.wantCommitted(alice, "nd", 0, committed)
	e.restart()
	e.wantCommitted(alice, "nd", 0, committed)

	up = e.begin(alice, resumeNoDigest("nd", "f", b, committed))
	if err := write(up, b[committed:]); err != nil {
		e.t.Fatal(err)
	}
	// No digest anywhere: nothing to verify against, so nothing is
	// published, and nothing is lost either.
	_, err := up.Commit(e.ctx, service.Expect{})
	e.wantErr("Commit without any sha256", err, service.ErrDigestRequired)
	e.wantNoFile(alice, "f")
	kept, err := e.s.QueryResumable(e.ctx, alice, "nd", 0)
	if err != nil || kept < committed || kept > int64(len(b)) || kept%e.unit() != 0 && kept != int64(len(b)) {
		e.t.Fatalf("QueryResumable after a Commit without a sha256 = %d, %v; want the upload kept at %d or more", kept, err, committed)
	}

	up = e.begin(alice, resumeNoDigest("nd", "f", b, kept))
	if err := write(up, b[kept:]); err != nil {
		e.t.Fatal(err)
	}
	info, err := up.Commit(e.ctx, digestOnly(b))
	if err != nil {
		e.t.Fatalf("Commit with the trailing sha256 = %v", err)
	}
	if info.Size != int64(len(b)) || info.SHA256 != sha256.Sum256(b) {
		e.t.Fatalf("Commit = %+v, want %d bytes with sha256 %x", info, len(b), sha256.Sum256(b))
	}
	e.wantFile(alice, "f", b)
	e.wantNoUpload(alice, "nd", 0)
}

// digestAtCommitMismatch commits an upload begun without a SHA-256 whose
// bytes, gathered over two streams, do not hash to the digest Commit
// declares: the upload gathered the wrong bytes, so it is discarded with
// service.ErrResumableDigestMismatch and nothing is published.
func digestAtCommitMismatch(e *env) {
	b := data(2*e.block()+1, 1)
	other := data(int64(len(b)), 2)
	up := e.beginNoDigest(alice, resumeNoDigest("bad", "f", b, 0))
	if up == nil {
		return
	}
	if err := write(up, other[:e.block()+1]); err != nil {
		e.t.Fatal(err)
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatal(err)
	}
	committed := e.kept(e.block() + 1)
	up = e.begin(alice, resumeNoDigest("bad", "f", b, committed))
	if err := write(up, b[committed:]); err != nil {
		e.t.Fatal(err)
	}
	_, err := up.Commit(e.ctx, digestOnly(b))
	e.wantErr("Commit of bytes that miss the trailing sha256", err, service.ErrResumableDigestMismatch)
	e.wantNoUpload(alice, "bad", 0)
	e.wantNoFile(alice, "f")
}

// digestAtCommitDeclarationsStay resumes uploads with other declarations
// than they were begun with: one begun without a SHA-256 cannot be resumed
// with one, nor one begun with a SHA-256 without it.
func digestAtCommitDeclarationsStay(e *env) {
	b := data(2*e.block(), 1)
	up := e.beginNoDigest(alice, resumeNoDigest("nd", "f", b, 0))
	if up == nil {
		return
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatal(err)
	}
	_, err := e.s.BeginResumable(e.ctx, alice, resume("nd", "f", b, 0))
	e.wantUploadErr("resuming without a sha256 an upload begun with one", err, "nd", service.ErrUploadMismatch, -1)

	committed := e.suspended(alice, "d", "f", b, e.block())
	_, err = e.s.BeginResumable(e.ctx, alice, resumeNoDigest("d", "f", b, committed))
	e.wantUploadErr("resuming with a sha256 an upload begun without one", err, "d", service.ErrUploadMismatch, -1)
	e.finish(alice, "d", "f", b, committed)
}
