package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"sync"

	"github.com/greeter/greeter/service"
)

// uploadBehaviours are those of plain uploads: Create, Write, Commit and
// Abort.
var uploadBehaviours = []behaviour{
	{name: "CommitMakesVisible", run: commitMakesVisible},
	{name: "AbortLeavesNothing", run: abortLeavesNothing},
	{name: "FailedCommitLeavesNothing", run: failedCommitLeavesNothing},
	{name: "ReplaceLastCommitWins", run: replaceLastCommitWins},
	{name: "ConcurrentWritersOneName", run: concurrentWritersOneName},
	{name: "CreateOnly", run: createOnly},
	{name: "IfMatch", run: ifMatch},
}

// commitMakesVisible uploads files of several sizes: nothing is visible
// until Commit, and then Stat, Open, the bytes and List agree.
func commitMakesVisible(e *env) {
	for i, n := range []int64{0, 1, 70_000, 2*e.block() + 1} {
		name := []string{"empty", "one", "dir/some", "a/b/c/parts"}[i]
		b := data(n, 1)
		u, err := e.s.Create(e.ctx, alice, name)
		if err != nil {
			e.t.Fatalf("Create(%q) = %v", name, err)
		}
		if err := write(u, b); err != nil {
			e.t.Fatalf("writing %q: %v", name, err)
		}
		if got := u.Written(); got != n {
			e.t.Fatalf("Written of %q = %d, want %d", name, got, n)
		}
		e.wantNoFile(alice, name)
		info, err := u.Commit(e.ctx, expect(b))
		if err != nil {
			e.t.Fatalf("Commit(%q) = %v", name, err)
		}
		if info.Name != name || info.Size != n || info.SHA256 != sha256.Sum256(b) || info.Modified.IsZero() {
			e.t.Fatalf("Commit(%q) = %+v, want its name, size %d and sha256", name, info, n)
		}
		e.wantFile(alice, name, b)
		page, err := e.s.List(e.ctx, alice, name, "", 10)
		if err != nil || len(page) != 1 || page[0].Name != name || page[0].Size != n || page[0].SHA256 != info.SHA256 || page[0].Modified.IsZero() {
			e.t.Fatalf("List(prefix %q) = %+v, %v; want just the file as Commit described it", name, page, err)
		}
	}
	// The declared size and digest are optional.
	b := data(100, 2)
	if _, err := e.tryPut(alice, "undeclared", b, service.Expect{}); err != nil {
		e.t.Fatalf("upload without declarations: %v", err)
	}
	e.wantFile(alice, "undeclared", b)
}

// abortLeavesNothing aborts uploads before and after Commit.
func abortLeavesNothing(e *env) {
	u, err := e.s.Create(e.ctx, alice, "f")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := write(u, data(5000, 1)); err != nil {
		e.t.Fatal(err)
	}
	if err := u.Abort(); err != nil {
		e.t.Fatalf("Abort = %v", err)
	}
	if err := u.Abort(); err != nil {
		e.t.Fatalf("second Abort = %v, want nil", err)
	}
	if _, err := u.Write([]byte("x")); err == nil {
		e.t.Fatal("Write after Abort = nil error")
	}
	if _, err := u.Commit(e.ctx, service.Expect{}); err == nil {
		e.t.Fatal("Commit after Abort = nil error")
	}
	e.wantNoFile(alice, "f")

	b := data(300, 2)
	u, err = e.s.Create(e.ctx, alice, "f")
	if err != nil {
		e.t.Fatal(err)
	}
	if err := write(u, b); err != nil {
		e.t.Fatal(err)
	}
	if _, err := u.Commit(e.ctx, expect(b)); err != nil {
		e.t.Fatal(err)
	}
	if err := u.Abort(); err != nil {
		e.t.Fatalf("Abort after Commit = %v, want nil", err)
	}
	e.wantFile(alice, "f", b)
}

// failedCommitLeavesNothing fails commits in every way the contract
// names: nothing becomes visible, the version there stays, and the upload
// is over.
func failedCommitLeavesNothing(e *env) {
	old := data(1000, 1)
	e.put(alice, "f", old)
	b := data(1000, 2)
	wrongSize := expect(b)
	wrongSize.Size++
	wrongSum := expect(b)
	wrongSum.SHA256[0] ^= 1
	canceled, cancel := context.WithCancel(e.ctx)
	cancel()
	for _, c := range []struct {
		name   string
		ctx    context.Context
		want   service.Expect
		target error
	}{
		{"size mismatch", e.ctx, wrongSize, service.ErrSizeMismatch},
		{"digest mismatch", e.ctx, wrongSum, service.ErrDigestMismatch},
		{"canceled context", canceled, expect(b), context.Canceled},
	} {
		for _, name := range []string{"f", "new"} {
			u, err := e.s.Create(e.ctx, alice, name)
			if err != nil {
				e.t.Fatal(err)
			}
			if err := write(u, b); err != nil {
				e.t.Fatal(err)
			}
			_, err = u.Commit(c.ctx, c.want)
			e.wantErr("Commit of "+name+" with "+c.name, err, c.target)
			if _, err := u.Write([]byte("x")); err == nil {
				e.t.Fatalf("Write after a failed Commit (%s) = nil error", c.name)
			}
			if _, err := u.Commit(e.ctx, expect(b)); err == nil {
				e.t.Fatalf("Commit after a failed Commit (%s) = nil error", c.name)
			}
			if err := u.Abort(); err != nil {
				e.t.Fatalf("Abort after a failed Commit (%s) = %v, want nil", c.name, err)
			}
		}
		e.wantFile(alice, "f", old)
		e.wantNoFile(alice, "new")
	}
}

// replaceLastCommitWins commits two uploads of one name in the reverse
// order of their creation: the one committed last is the file.
func replaceLastCommitWins(e *env) {
	e.put(alice, "f", data(100, 1))
	first, second := data(2000, 2), data(3000, 3)
	u1, err := e.s.Create(e.ctx, alice, "f")
	if err != nil {
		e.t.Fatal(err)
	}
	defer u1.Abort()
	u2, err := e.s.Create(e.ctx, alice, "f")
	if err != nil {
		e.t.Fatal(err)
	}
	defer u2.Abort()
	if err := write(u1, first); err != nil {
		e.t.Fatal(err)
	}
	if err := write(u2, second); err != nil {
		e.t.Fatal(err)
	}
	if _, err := u2.Commit(e.ctx, expect(second)); err != nil {
		e.t.Fatal(err)
	}
	e.wantFile(alice, "f", second)
	if _, err := u1.Commit(e.ctx, expect(first)); err != nil {
		e.t.Fatal(err)
	}
	e.wantFile(alice, "f", first)
	if got := e.names(alice, ""); !slices.Equal(got, []string{"f"}) {
		e.t.Fatalf("List = %q, want one file f", got)
	}
}

// concurrentWritersOneName lets several uploads of one name write and
// commit at once: all succeed, and the file is exactly one of them, its
// recorded SHA-256 that of its bytes.
func concurrentWritersOneName(e *env) {
	const writers = 6
	var wg sync.WaitGroup
	errs := make([]error, writers)
	contents := make([][]byte, writers)
	for i := range writers {
		contents[i] = bytes.Repeat([]byte{byte('A' + i)}, 40_000+i)
		wg.Go(func() {
			_, errs[i] = e.tryPut(alice, "shared/name", contents[i], expect(contents[i]))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			e.t.Errorf("writer %d: %v", i, err)
		}
	}
	got, fi := e.content(alice, "shared/name")
	matches := 0
	for _, c := range contents {
		if bytes.Equal(got, c) {
			matches++
		}
	}
	if matches != 1 {
		e.t.Fatalf("the file (%d bytes) equals %d of the uploads, want exactly 1", len(got), matches)
	}
	if fi.SHA256 != sha256.Sum256(got) || fi.Size != int64(len(got)) {
		e.t.Fatalf("Stat = %+v, but the bytes are %d with sha256 %x", fi, len(got), sha256.Sum256(got))
	}
}

// createOnly commits with Expect.CreateOnly: it fails with ErrExists when
// the name is taken, and of two racing uploads of a new name exactly one
// succeeds.
func createOnly(e *env) {
	b := data(100, 1)
	want := expect(b)
	want.CreateOnly = true
	if _, err := e.tryPut(alice, "f", b, want); err != nil {
		e.t.Fatalf("create-only upload of a new name: %v", err)
	}
	other := data(200, 2)
	want2 := expect(other)
	want2.CreateOnly = true
	_, err := e.tryPut(alice, "f", other, want2)
	e.wantErr("create-only upload of an existing name", err, service.ErrExists)
	e.wantFile(alice, "f", b)

	const racers = 4
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		c := data(300, uint64(10+i))
		w := expect(c)
		w.CreateOnly = true
		wg.Go(func() { _, errs[i] = e.tryPut(alice, "race", c, w) })
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, service.ErrExists):
			e.t.Errorf("racer %d: %v, want nil or ErrExists", i, err)
		}
	}
	if won != 1 {
		e.t.Fatalf("%d of %d racing create-only uploads succeeded, want 1", won, racers)
	}
}

// ifMatch commits with Expect.IfMatch: only over a file with that SHA-256.
func ifMatch(e *env) {
	ifMatch := func(b []byte, sum [32]byte) service.Expect {
		want := expect(b)
		want.IfMatch, want.HasIfMatch = sum, true
		return want
	}
	v1, v2, v3 := data(100, 1), data(200, 2), data(300, 3)
	e.put(alice, "f", v1)
	if _, err := e.tryPut(alice, "f", v2, ifMatch(v2, sha256.Sum256(v1))); err != nil {
		e.t.Fatalf("if-match upload over the matching file: %v", err)
	}
	e.wantFile(alice, "f", v2)
	_, err := e.tryPut(alice, "f", v3, ifMatch(v3, sha256.Sum256(v1)))
	e.wantErr("if-match upload over a replaced file", err, service.ErrNotMatched)
	e.wantFile(alice, "f", v2)
	_, err = e.tryPut(alice, "missing", v3, ifMatch(v3, sha256.Sum256(v1)))
	e.wantErr("if-match upload of a missing file", err, service.ErrNotMatched)
	e.wantNoFile(alice, "missing")
}
