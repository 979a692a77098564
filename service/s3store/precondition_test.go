package s3store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/greeter/greeter/service"
)

// commitWay commits b as owner's "f" on s with want, one way the store
// publishes a file, and returns Commit's error. A resumable upload's id is
// id.
type commitWay struct {
	name   string
	size   int
	commit func(t *testing.T, s *Store, id string, b []byte, want service.Expect) error
}

// commitWays are the four writes that publish a file: a PutObject and a
// copy of a staged upload (plain), a PutObject and a completed multipart
// upload (resumable).
var commitWays = []commitWay{
	{"plain small", 1000, commitPlain},
	{"plain staged", testPart + 1000, commitPlain},
	{"resumable small", 1000, commitResumable},
	{"resumable parts", testPart + 1000, commitResumable},
}

func commitPlain(t *testing.T, s *Store, _ string, b []byte, want service.Expect) error {
	t.Helper()
	up, err := s.Create(testCtx(t), owner, "f")
	if err != nil {
		return err
	}
	defer up.Abort()
	writeChunks(t, up, b)
	_, err = up.Commit(testCtx(t), want)
	return err
}

func commitResumable(t *testing.T, s *Store, id string, b []byte, want service.Expect) error {
	t.Helper()
	up, err := s.BeginResumable(testCtx(t), owner, resume(id, "f", b, 0))
	if err != nil {
		return err
	}
	defer up.Abort()
	writeChunks(t, up, b)
	_, err = up.Commit(testCtx(t), want)
	return err
}

// declare returns the Expect of b with edit applied.
func declare(b []byte, edit func(*service.Expect)) service.Expect {
	want := service.Expect{Size: int64(len(b)), HasSize: true, SHA256: sha256.Sum256(b), HasSHA256: true}
	edit(&want)
	return want
}

// TestPreconditionsCheckedByTheServer changes the key between a commit's
// own checks and its write, as another replica would: the server's check
// of If-None-Match or If-Match fails the write, with ErrExists or
// ErrNotMatched, and the other replica's file stays.
func TestPreconditionsCheckedByTheServer(t *testing.T) {
	for _, way := range commitWays {
		for _, c := range []struct {
			name   string
			before []byte // the file there first, if any
			want   func(*service.Expect)
			change func(t *testing.T, other *Store)
			target error
			after  []byte // the file there after, if any
		}{
			{"create-only, created meanwhile", nil, func(w *service.Expect) { w.CreateOnly = true },
				func(t *testing.T, o *Store) { put(t, o, "f", []byte("other")) }, service.ErrExists, []byte("other")},
			{"if-match, replaced meanwhile", []byte("v1"), func(w *service.Expect) { w.IfMatch, w.HasIfMatch = sha256.Sum256([]byte("v1")), true },
				func(t *testing.T, o *Store) { put(t, o, "f", []byte("v2")) }, service.ErrNotMatched, []byte("v2")},
			{"if-match, deleted meanwhile", []byte("v1"), func(w *service.Expect) { w.IfMatch, w.HasIfMatch = sha256.Sum256([]byte("v1")), true },
				func(t *testing.T, o *Store) {
					if err := o.Delete(testCtx(t), owner, "f"); err != nil {
						t.Fatal(err)
					}
				}, service.ErrNotMatched, nil},
		} {
			t.Run(way.name+"/"+c.name, func(t *testing.T) {
				s, other := replicas(t)
				if c.before != nil {
					put(t, s, "f", c.before)
				}
				s.beforeWrite = func(string) { c.change(t, other) }
				b := data(way.size, 1)
				err := way.commit(t, s, "id", b, declare(b, c.want))
				if !errors.Is(err, c.target) {
					t.Fatalf("Commit = %v, want %v", err, c.target)
				}
				s.beforeWrite = nil
				if c.after != nil {
					if got := get(t, s, "f"); !bytes.Equal(got, c.after) {
						t.Fatalf("f holds %q, want the other replica's %q", got, c.after)
					}
				} else if _, err := s.Stat(testCtx(t), owner, "f"); !errors.Is(err, service.ErrNotFound) {
					t.Fatalf("Stat = %v, want ErrNotFound", err)
				}
				assertClean(t, shared, s)
			})
		}
	}
}

// TestIfMatchWrites replaces a file with if-match by every way: the right
// digest replaces it, a wrong one or a missing file fail before anything
// is written.
func TestIfMatchWrites(t *testing.T) {
	for _, way := range commitWays {
		t.Run(way.name, func(t *testing.T) {
			s := openStore(t, nil)
			put(t, s, "f", []byte("v1"))
			b := data(way.size, 2)
			wrong := declare(b, func(w *service.Expect) { w.IfMatch, w.HasIfMatch = sha256.Sum256([]byte("v0")), true })
			if err := way.commit(t, s, "id", b, wrong); !errors.Is(err, service.ErrNotMatched) {
				t.Fatalf("Commit with a wrong if_match = %v, want ErrNotMatched", err)
			}
			right := declare(b, func(w *service.Expect) { w.IfMatch, w.HasIfMatch = sha256.Sum256([]byte("v1")), true })
			if err := way.commit(t, s, "id", b, right); err != nil {
				t.Fatalf("Commit with the right if_match = %v", err)
			}
			if got := get(t, s, "f"); !bytes.Equal(got, b) {
				t.Fatal("the file is not the upload's")
			}
			assertClean(t, shared, s)
		})
	}
}

// TestCreateOnlyRaceAcrossReplicas races create-only commits of one new
// name on three replicas, whose in-process locks do not see each other:
// the server lets exactly one win.
func TestCreateOnlyRaceAcrossReplicas(t *testing.T) {
	for _, way := range commitWays {
		t.Run(way.name, func(t *testing.T) {
			first := openStore(t, nil)
			stores := []*Store{first}
			for range 2 {
				stores = append(stores, openStore(t, nil, func(o *Options) { o.Prefix = first.opts.Prefix }))
			}
			var wg sync.WaitGroup
			errs := make([]error, len(stores))
			var ready sync.WaitGroup
			ready.Add(len(stores))
			for i, s := range stores {
				// Every commit waits at its write until all passed their
				// checks, or failed before.
				reached := sync.OnceFunc(ready.Done)
				s.beforeWrite = func(string) { reached(); ready.Wait() }
				b := data(way.size, byte(10+i))
				wg.Go(func() {
					defer reached()
					errs[i] = way.commit(t, s, fmt.Sprint("id", i), b, declare(b, func(w *service.Expect) { w.CreateOnly = true }))
				})
			}
			wg.Wait()
			won := 0
			for i, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, service.ErrExists):
					t.Errorf("replica %d: %v, want nil or ErrExists", i, err)
				}
			}
			if won != 1 {
				t.Fatalf("%d create-only commits won, want 1 (errors %v)", won, fmt.Sprint(errs))
			}
			for _, s := range stores {
				assertClean(t, shared, s)
			}
		})
	}
}
