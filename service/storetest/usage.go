package storetest

import (
	"errors"

	"github.com/greeter/greeter/service"
)

// usageBehaviours are those of Usage and of the quotas a store enforces.
var usageBehaviours = []behaviour{
	{name: "UsageCounts", run: usageCounts},
	{name: "QuotaObjects", run: quotaObjects, cfg: func(c *Config) { c.Quota = service.Quota{Objects: 2} }},
	{name: "QuotaBytes", run: quotaBytes, cfg: func(c *Config) { c.Quota = service.Quota{Bytes: 1000} }},
	{name: "QuotaDeclaredSize", run: quotaDeclaredSize, cfg: func(c *Config) { c.Quota = service.Quota{Bytes: 1000} }},
}

// wantUsage checks owner's Usage: bytes and objects, and the quota that
// Config set.
func (e *env) wantUsage(owner string, bytes, objects int64, quota service.Quota) {
	e.t.Helper()
	u, err := e.s.Usage(e.ctx, owner)
	if err != nil {
		e.t.Fatalf("Usage = %v", err)
	}
	if u.Bytes != bytes || u.Objects != objects || u.Quota != quota {
		e.t.Fatalf("Usage = %+v, want %d bytes, %d objects, quota %+v", u, bytes, objects, quota)
	}
}

// wantQuotaErr fails the test unless err is a *service.QuotaError about
// subject with limit.
func (e *env) wantQuotaErr(op string, err error, subject string, limit int64) {
	e.t.Helper()
	var qe *service.QuotaError
	if !errors.As(err, &qe) || !errors.Is(err, service.ErrQuotaExceeded) || qe.Subject != subject || qe.Limit != limit {
		e.t.Fatalf("%s = %v, want a *service.QuotaError on %s, limit %d", op, err, subject, limit)
	}
}

// usageCounts follows Usage through uploads, replacements, resumable
// uploads (which set aside their declared size less that of the file they
// replace, and one file unless they replace one), deletes and a restart.
func usageCounts(e *env) {
	none := service.Quota{}
	e.wantUsage(alice, 0, 0, none)
	e.put(alice, "a", data(10, 1))
	e.put(alice, "d/e", data(20, 2))
	e.wantUsage(alice, 30, 2, none)
	e.wantUsage(bob, 0, 0, none)
	e.put(alice, "a", data(5, 3))
	e.wantUsage(alice, 25, 2, none)

	b := data(100, 4)
	e.suspended(alice, "r", "r", b, 0)
	e.wantUsage(alice, 125, 3, none)
	up := e.begin(alice, resume("r", "r", b, 0))
	if err := up.Abort(); err != nil {
		e.t.Fatal(err)
	}
	e.wantUsage(alice, 25, 2, none)

	c := data(30, 5) // replaces a, of 5 bytes
	e.suspended(alice, "ra", "a", c, 0)
	e.wantUsage(alice, 50, 2, none)
	e.finish(alice, "ra", "a", c, 0)
	e.wantUsage(alice, 50, 2, none)

	if err := e.s.Delete(e.ctx, alice, "d/e"); err != nil {
		e.t.Fatal(err)
	}
	e.wantUsage(alice, 30, 1, none)
	e.suspended(alice, "s", "s", b, 0)
	e.wantUsage(alice, 130, 2, none)
	e.restart()
	e.wantUsage(alice, 130, 2, none)
	if err := e.s.Delete(e.ctx, alice, "a"); err != nil {
		e.t.Fatal(err)
	}
	e.wantUsage(alice, 100, 1, none)
}

// quotaObjects fills a quota of 2 files: a new file fails with a
// QuotaError at Create or BeginResumable, replacing one still works, and
// deleting one makes room.
func quotaObjects(e *env) {
	q := service.Quota{Objects: 2}
	e.wantUsage(alice, 0, 0, q)
	e.put(alice, "a", data(10, 1))
	e.put(alice, "b", data(10, 2))
	u, err := e.s.Create(e.ctx, alice, "c")
	if err == nil {
		u.Abort()
	}
	e.wantQuotaErr("Create of a third file", err, service.QuotaObjects, 2)
	_, err = e.s.BeginResumable(e.ctx, alice, resume("c", "c", data(10, 3), 0))
	e.wantQuotaErr("BeginResumable of a third file", err, service.QuotaObjects, 2)
	e.wantNoFile(alice, "c")
	e.wantNoUpload(alice, "c", 0)
	e.wantUsage(alice, 20, 2, q)

	a := data(50, 4)
	e.put(alice, "a", a) // replacing adds no file
	e.finish(alice, "ra", "b", data(60, 5), 0)
	e.wantUsage(alice, 110, 2, q)
	e.put(bob, "a", data(1, 6)) // bob's quota is his own
	e.put(bob, "b", data(1, 7))

	if err := e.s.Delete(e.ctx, alice, "b"); err != nil {
		e.t.Fatal(err)
	}
	c := data(10, 8)
	e.put(alice, "c", c)
	e.wantUsage(alice, 60, 2, q)
}

// quotaBytes fills a quota of 1000 bytes: the Write that crosses it fails
// with a QuotaError and ends the upload, a resumable upload whose declared
// size does not fit fails at BeginResumable, and a replaced file's size
// counts as freed.
func quotaBytes(e *env) {
	q := service.Quota{Bytes: 1000}
	e.put(alice, "a", data(400, 1))
	u, err := e.s.Create(e.ctx, alice, "b")
	if err != nil {
		e.t.Fatal(err)
	}
	defer u.Abort()
	_, err = u.Write(data(700, 2))
	e.wantQuotaErr("Write past the quota", err, service.QuotaBytes, 1000)
	if _, err := u.Commit(e.ctx, service.Expect{}); err == nil {
		e.t.Fatal("Commit of an upload whose Write went past the quota = nil error")
	}
	e.wantNoFile(alice, "b")
	e.wantUsage(alice, 400, 1, q)

	_, err = e.s.BeginResumable(e.ctx, alice, resume("r", "r", data(601, 3), 0))
	e.wantQuotaErr("BeginResumable of more than fits", err, service.QuotaBytes, 1000)
	e.wantNoUpload(alice, "r", 0)

	// 900 bytes over a's 400 fit: a's size is freed.
	e.put(alice, "a", data(900, 4))
	e.wantUsage(alice, 900, 1, q)
	up := e.begin(alice, resume("ra", "a", data(1000, 5), 0))
	e.wantUsage(alice, 1000, 1, q)
	if err := up.Abort(); err != nil {
		e.t.Fatal(err)
	}
	e.wantUsage(alice, 900, 1, q)

	if err := e.s.Delete(e.ctx, alice, "a"); err != nil {
		e.t.Fatal(err)
	}
	e.put(alice, "full", data(1000, 6))
	_, err = e.tryPut(alice, "one-more", []byte("x"), service.Expect{})
	e.wantQuotaErr("one byte past a full quota", err, service.QuotaBytes, 1000)
	e.wantUsage(alice, 1000, 1, q)
}

// quotaDeclaredSize: a plain upload of a declared size (service.SizedStore)
// holds all of it from the start, so a second one that does not fit beside
// it fails at CreateSized however little of the first was written; a
// declared size over a file it replaces counts only what it adds.
func quotaDeclaredSize(e *env) {
	ss, ok := e.s.(service.SizedStore)
	if !ok {
		e.t.Fatalf("%T does not implement service.SizedStore", e.s)
	}
	q := service.Quota{Bytes: 1000}
	a := data(600, 1)
	first, err := ss.CreateSized(e.ctx, alice, "a", 600)
	if err != nil {
		e.t.Fatal(err)
	}
	defer first.Abort()
	if _, err := first.Write(a[:100]); err != nil {
		e.t.Fatal(err)
	}
	e.wantUsage(alice, 600, 1, q)
	_, err = ss.CreateSized(e.ctx, alice, "b", 600)
	e.wantQuotaErr("CreateSized beside an upload that holds 600 bytes", err, service.QuotaBytes, 1000)
	if _, err := first.Write(a[100:]); err != nil {
		e.t.Fatal(err)
	}
	if _, err := first.Commit(e.ctx, expect(a)); err != nil {
		e.t.Fatal(err)
	}
	e.wantUsage(alice, 600, 1, q)

	// 900 bytes over a's 600 add 300: they fit.
	b := data(900, 2)
	second, err := ss.CreateSized(e.ctx, alice, "a", 900)
	if err != nil {
		e.t.Fatalf("CreateSized of 900 bytes over a 600-byte file under a 1000-byte quota: %v", err)
	}
	defer second.Abort()
	if _, err := second.Write(b); err != nil {
		e.t.Fatal(err)
	}
	if _, err := second.Commit(e.ctx, expect(b)); err != nil {
		e.t.Fatal(err)
	}
	e.wantUsage(alice, 900, 1, q)
	e.wantFile(alice, "a", b)
}
