package storetest

import (
	"errors"
	"strings"
	"time"

	"github.com/greeter/greeter/service"
)

// resumeErrBehaviours are those of resumable uploads that cannot begin or
// resume: every error of BeginResumable and QueryResumable.
var resumeErrBehaviours = []behaviour{
	{name: "ResumeOffsetMismatch", run: resumeOffsetMismatch},
	{name: "ResumeBusy", run: resumeBusy},
	{name: "ResumeUploadMismatch", run: resumeUploadMismatch},
	{name: "TooManyUploads", run: tooManyUploads, cfg: func(c *Config) { c.MaxUploadsPerOwner = 2 }},
	{name: "UploadExpiry", run: uploadExpiry},
	{name: "InvalidUploadID", run: invalidUploadID},
}

// resumeOffsetMismatch begins uploads at offsets other than their
// committed size: the error carries the committed size (0 for an upload
// that does not exist yet) and changes nothing.
func resumeOffsetMismatch(e *env) {
	b := data(3*e.block(), 1)
	_, err := e.s.BeginResumable(e.ctx, alice, resume("new", "f", b, 10))
	e.wantUploadErr("BeginResumable of a new upload at offset 10", err, "new", service.ErrOffsetMismatch, 0)
	e.wantNoUpload(alice, "new", 0)

	committed := e.suspended(alice, "idle", "f", b, e.block()+e.block()/2)
	for _, off := range []int64{committed - 1, committed + 1, -1, int64(len(b)), int64(len(b)) + 1} {
		_, err := e.s.BeginResumable(e.ctx, alice, resume("idle", "f", b, off))
		e.wantUploadErr("BeginResumable at a wrong offset", err, "idle", service.ErrOffsetMismatch, committed)
	}
	// For bob, "idle" is a new upload: it starts at 0.
	_, err = e.s.BeginResumable(e.ctx, bob, resume("idle", "f", b, committed))
	e.wantUploadErr("bob's BeginResumable of alice's upload", err, "idle", service.ErrOffsetMismatch, 0)
	e.wantCommitted(alice, "idle", 0, committed)
	e.finish(alice, "idle", "f", b, committed)
}

// resumeBusy begins an upload another stream holds: ErrUploadBusy, until
// that stream lets go.
func resumeBusy(e *env) {
	b := data(2*e.block(), 1)
	held := e.begin(alice, resume("held", "f", b, 0))
	if err := write(held, b[:e.block()]); err != nil {
		e.t.Fatal(err)
	}
	for _, off := range []int64{0, e.block()} {
		up, err := e.s.BeginResumable(e.ctx, alice, resume("held", "f", b, off))
		if err == nil {
			up.Abort()
		}
		e.wantUploadErr("BeginResumable of a held upload", err, "held", service.ErrUploadBusy, -1)
	}
	if err := held.Suspend(); err != nil {
		e.t.Fatal(err)
	}
	e.finish(alice, "held", "f", b, e.kept(e.block()))
}

// resumeUploadMismatch resumes an upload with another name, size or
// digest: ErrUploadMismatch, and the upload is unchanged.
func resumeUploadMismatch(e *env) {
	b := data(2*e.block(), 1)
	committed := e.suspended(alice, "m", "f", b, e.block())
	other := data(int64(len(b)), 2)
	for _, c := range []struct {
		what string
		r    service.Resume
	}{
		{"another name", resume("m", "g", b, committed)},
		{"another size", resume("m", "f", b[:len(b)-1], committed)},
		{"another digest", resume("m", "f", other, committed)},
	} {
		up, err := e.s.BeginResumable(e.ctx, alice, c.r)
		if err == nil {
			up.Abort()
		}
		e.wantUploadErr("BeginResumable with "+c.what, err, "m", service.ErrUploadMismatch, -1)
	}
	e.wantCommitted(alice, "m", 0, committed)
	e.finish(alice, "m", "f", b, committed)
}

// tooManyUploads fills alice's cap of 2 incomplete uploads: a third fails
// with ErrTooManyUploads while resuming hers and bob's own still work, and
// finished, aborted or expired uploads free their place.
func tooManyUploads(e *env) {
	b := data(100, 1)
	tryBegin := func(owner, id string, ttl time.Duration) (service.ResumableUpload, error) {
		r := resume(id, id, b, 0)
		r.TTL = ttl
		return e.s.BeginResumable(e.ctx, owner, r)
	}
	e.suspended(alice, "a", "a", b, 0)
	e.suspended(alice, "b", "b", b, 0)
	_, err := tryBegin(alice, "c", 0)
	e.wantUploadErr("a third upload", err, "c", service.ErrTooManyUploads, -1)
	e.wantNoUpload(alice, "c", 0)

	up := e.begin(alice, resume("a", "a", b, 0)) // resuming is not a new upload
	if err := up.Suspend(); err != nil {
		e.t.Fatal(err)
	}
	up = e.begin(bob, resume("c", "c", b, 0)) // bob's cap is his own
	up.Abort()

	up = e.begin(alice, resume("a", "a", b, 0))
	if err := up.Abort(); err != nil {
		e.t.Fatal(err)
	}
	e.suspended(alice, "c", "c", b, 0) // a's place
	e.finish(alice, "b", "b", b, 0)
	e.suspended(alice, "d", "d", b, 0) // b's place

	// Expired uploads do not count.
	e.clock.Advance(2 * time.Hour)
	_, err = tryBegin(alice, "e", 0)
	e.wantUploadErr("a third upload, without a TTL", err, "e", service.ErrTooManyUploads, -1)
	up, err = tryBegin(alice, "e", time.Hour)
	if err != nil {
		e.t.Fatalf("BeginResumable with the others expired = %v", err)
	}
	up.Abort()
}

// uploadExpiry lets an upload expire on the suite's clock: QueryResumable
// with a TTL then answers ErrNotFound (without one, the upload is still
// there), and beginning it again starts a new upload at 0.
func uploadExpiry(e *env) {
	b := data(2*e.block(), 1)
	committed := e.suspended(alice, "old", "f", b, e.block()+1)
	e.clock.Advance(30 * time.Minute)
	fresh := e.suspended(alice, "fresh", "g", b, e.block())
	e.clock.Advance(45 * time.Minute) // old: 75 min, fresh: 45 min

	e.wantNoUpload(alice, "old", time.Hour)
	e.wantCommitted(alice, "old", 0, committed) // no TTL: no expiry
	e.wantCommitted(alice, "fresh", time.Hour, fresh)

	r := resume("old", "f", b, committed)
	r.TTL = time.Hour
	_, err := e.s.BeginResumable(e.ctx, alice, r)
	e.wantUploadErr("resuming an expired upload", err, "old", service.ErrOffsetMismatch, 0)
	r.Offset = 0
	up := e.begin(alice, r)
	if err := write(up, b); err != nil {
		e.t.Fatal(err)
	}
	if _, err := up.Commit(e.ctx, service.Expect{}); err != nil {
		e.t.Fatalf("Commit of the upload that replaced an expired one = %v", err)
	}
	e.wantFile(alice, "f", b)
	e.wantNoUpload(alice, "old", 0)

	// Writing to an upload keeps it alive.
	r = resume("fresh", "g", b, fresh)
	r.TTL = time.Hour
	up = e.begin(alice, r)
	e.clock.Advance(30 * time.Minute) // 75 min after it began
	if err := write(up, b[fresh:2*e.block()-1]); err != nil {
		e.t.Fatal(err)
	}
	if err := up.Suspend(); err != nil {
		e.t.Fatal(err)
	}
	e.wantCommitted(alice, "fresh", time.Hour, e.kept(2*e.block()-1))
}

// invalidUploadID begins and queries uploads whose ids break the rules,
// and resumable uploads that do not declare their size.
func invalidUploadID(e *env) {
	b := data(100, 1)
	for _, id := range []string{"", "a/b", "a.b", "../x", strings.Repeat("a", 129)} {
		up, err := e.s.BeginResumable(e.ctx, alice, resume(id, "f", b, 0))
		if err == nil {
			up.Abort()
		}
		e.wantErr("BeginResumable with upload id "+id, err, service.ErrInvalidUploadID)
		_, err = e.s.QueryResumable(e.ctx, alice, id, 0)
		e.wantErr("QueryResumable with upload id "+id, err, service.ErrInvalidUploadID)
	}
	// Without a digest is fine where the digest may come at Commit
	// (digestatcommit.go); without a size never.
	noSize := resume("n", "f", b, 0)
	noSize.Want.HasSize = false
	up, err := e.s.BeginResumable(e.ctx, alice, noSize)
	if err == nil {
		up.Abort()
		e.t.Fatal("BeginResumable without a declared size = nil error")
	}
	if errors.Is(err, service.ErrUnavailable) {
		e.t.Fatalf("BeginResumable without a declared size = %v, not the storage's fault", err)
	}
	e.wantNoUpload(alice, "n", 0)
	// The longest id is fine.
	e.finish(alice, strings.Repeat("a", 128), "g", b, 0)
}
