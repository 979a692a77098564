package storetest

import (
	"errors"

	"github.com/greeter/greeter/service"
)

// outageBehaviours are those of a store that cannot reach its storage.
var outageBehaviours = []behaviour{
	{name: "Unavailable", run: unavailable, cfg: func(c *Config) { c.Cut = true }},
}

// unavailable cuts the storage off (Storage.Cut) and calls every method:
// each fails with an error wrapping service.ErrUnavailable, and none with
// an answer about the files (ErrNotFound, an empty listing, a committed
// size of 0), which would send a client the wrong way.
func unavailable(e *env) {
	if e.st.Cut == nil {
		e.t.Skip("storetest: the harness cannot cut its storage off (Storage.Cut is nil); ErrUnavailable is not tested")
	}
	b := data(2*e.block(), 1)
	e.put(alice, "kept", b)
	plain, err := e.s.Create(e.ctx, alice, "plain")
	if err != nil {
		e.t.Fatal(err)
	}
	defer plain.Abort()
	if err := write(plain, b[:100]); err != nil {
		e.t.Fatal(err)
	}
	committed := e.suspended(alice, "idle", "idle", b, e.block())

	e.st.Cut(e.t)
	check := func(op string, err error) {
		e.t.Helper()
		if !errors.Is(err, service.ErrUnavailable) {
			e.t.Errorf("%s with the storage cut off = %v, want an error wrapping ErrUnavailable", op, err)
		}
		for _, lie := range []error{service.ErrNotFound, service.ErrOffsetMismatch, service.ErrNotMatched, service.ErrExists} {
			if errors.Is(err, lie) {
				e.t.Errorf("%s with the storage cut off = %v: it wraps %q, which it cannot know", op, err, lie)
			}
		}
	}
	_, err = e.s.Stat(e.ctx, alice, "kept")
	check("Stat", err)
	f, err := e.s.Open(e.ctx, alice, "kept")
	if err == nil {
		f.Close()
	}
	check("Open", err)
	page, err := e.s.List(e.ctx, alice, "", "", 10)
	check("List", err)
	if len(page) != 0 {
		e.t.Errorf("List with the storage cut off = %d entries and an error, want none", len(page))
	}
	check("Delete", e.s.Delete(e.ctx, alice, "kept"))
	if u, err := e.s.Create(e.ctx, alice, "new"); err == nil {
		// A store may take the upload and fail when it has to store it.
		err = write(u, b)
		if err == nil {
			_, err = u.Commit(e.ctx, service.Expect{})
		}
		u.Abort()
		check("an upload begun after the cut", err)
	} else {
		check("Create", err)
	}
	_, err = plain.Commit(e.ctx, service.Expect{})
	check("Commit of an upload begun before the cut", err)
	_, err = e.s.QueryResumable(e.ctx, alice, "idle", 0)
	check("QueryResumable", err)
	if up, err := e.s.BeginResumable(e.ctx, alice, resume("idle", "idle", b, committed)); err == nil {
		err = write(up, b[committed:])
		if err == nil {
			_, err = up.Commit(e.ctx, service.Expect{})
		}
		up.Abort()
		check("a resumed upload after the cut", err)
	} else {
		check("BeginResumable", err)
	}
	_, err = e.s.Usage(e.ctx, bob) // an owner the store has not counted yet
	check("Usage", err)
}
