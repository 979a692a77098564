// Package storetest is the conformance suite of service.ResumableStore, in
// the spirit of testing/fstest.TestFS: every store (the disk store, the S3
// store) passes the same table of behaviours through Run, and what a store
// does differently is stated in its Harness, never skipped silently.
//
// The suite reaches a store only through the service.ResumableStore
// contract and its harness: it reads no file and no bucket, so it
// assumes nothing about where the store keeps its bytes. It covers
// create, commit and abort (nothing visible before a commit, after an
// abort or after a failed commit), replacing (the last commit wins),
// concurrent writers to one name, preconditions, deleting during a
// download, listing in pages, deleting, owners, folders, usage and quotas,
// resumable uploads begun, suspended, resumed across a restart, queried
// and expired, and every error sentinel of service/store.go a store
// returns: ErrNotFound, ErrSizeMismatch, ErrDigestMismatch,
// ErrResumableDigestMismatch,
// ErrDigestRequired, ErrOffsetMismatch, ErrUploadBusy, ErrUploadMismatch, ErrTooManyUploads,
// ErrInvalidOwner, ErrInvalidUploadID, ErrConflict (when the store has
// folders), ErrExists, ErrNotMatched, ErrQuotaExceeded and, when the
// harness can cut the storage off, ErrUnavailable. ErrNoSpace needs a full
// disk or bucket and is left to each store's own tests.
package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/fakeclock"
	"github.com/greeter/greeter/service"
)

// Harness is how the suite reaches one store implementation, and what that
// implementation states about how it differs from the others.
type Harness struct {
	// Open opens a store on storage of its own that holds nothing, set up
	// as cfg says, and arranges for the store to be closed when t ends.
	// The suite calls it once per behaviour, from parallel subtests.
	Open func(t *testing.T, cfg Config) *Storage

	// Stated differences. Each behaviour that meets one checks the stated
	// variant, so a store that claims less than it does, or more, fails.

	// ResumeGranularity is the unit in which a resumable upload keeps its
	// bytes: Suspend, or a restart, keeps the bytes up to the end of the
	// last full unit and the committed size is rounded down to it, so the
	// client sends the rest again. 1 (or 0) means every byte is kept (the
	// disk store); the S3 store keeps whole parts, so it states its part
	// size.
	ResumeGranularity int64
	// WriteChecksSize states that a resumable upload's Write refuses bytes
	// past the declared size with service.ErrSizeMismatch (the S3 store:
	// no part may hold them). Otherwise Write takes them and Commit fails
	// with ErrSizeMismatch (the disk store). Either way nothing becomes
	// visible.
	WriteChecksSize bool
	// ChangedReadErr is what a File's ReadAt wraps once the version it
	// opened has been replaced or deleted, on a store that cannot keep
	// reading it (an object store without versions: service.ErrChanged).
	// Reads either return bytes of the opened version or fail with it; nil
	// states that a File always keeps reading its version (the disk store).
	ChangedReadErr error
	// Folders states that names form folders, as on a filesystem: a file
	// cannot stand where a folder of another file's name is, so such an
	// upload fails with service.ErrConflict (at Create or at Commit).
	// Without folders (an object store) "a" and "a/b" are two files.
	Folders bool
	// DigestAtCommit states that a resumable upload may be begun without a
	// SHA-256 and verified against the one Commit's want carries (the disk
	// store). Otherwise BeginResumable without a SHA-256 fails with
	// service.ErrDigestRequired (the S3 store: the digest is object
	// metadata, fixed when the multipart upload starts).
	DigestAtCommit bool
	// MaxOwnerLen is the longest owner the store accepts, in bytes; a longer
	// one fails with service.ErrInvalidOwner. Zero tests only the empty
	// owner.
	MaxOwnerLen int
}

// Config is what the suite asks of the storage and store Harness.Open
// opens.
type Config struct {
	// Now is the clock the store must stamp and expire resumable uploads
	// by. The suite moves it; the store must never read another clock for
	// that.
	Now func() time.Time
	// MaxUploadsPerOwner is how many incomplete resumable uploads the store
	// must let one owner have; beginning one more fails with
	// service.ErrTooManyUploads. It is at least 1.
	MaxUploadsPerOwner int
	// Quota is every owner's quota; zero fields mean no limit.
	Quota service.Quota
	// Cut asks for storage that Storage.Cut can make unreachable without
	// disturbing any other subtest: a data directory or a server of its
	// own.
	Cut bool
}

// Storage is one store the harness opened, with the hooks the suite uses
// on what lies under it.
type Storage struct {
	// Store is the store.
	Store service.ResumableStore
	// Restart closes the store in use and opens a new one on the same
	// storage with the same Config, as a restarted server would, and
	// returns it. Uploads that the old store held are abandoned, as in a
	// crash: the suite neither suspends them nor uses them again.
	Restart func(t *testing.T) service.ResumableStore
	// Cut makes the storage unreachable for the rest of the subtest (the
	// disk store: its data directory removed; the S3 store: its server
	// stopped). Nil if the harness cannot, when the behaviour that needs it
	// is skipped with a message saying so.
	Cut func(t *testing.T)
	// LoseCommitAnswer runs before the Commit of owner's resumable upload
	// id, which has all its bytes; the restore it returns runs after that
	// Commit succeeded, and re-creates what the store can observe when a
	// commit took effect but the process or its storage died before
	// forgetting the upload, so that the answer was lost (the disk store:
	// the state file left after the rename; the S3 store: the state
	// object left after CompleteMultipartUpload). Nil if the harness
	// cannot, when the behaviour that needs it is skipped with a message
	// saying so.
	LoseCommitAnswer func(t *testing.T, owner, id string) (restore func(t *testing.T))
}

// behaviour is one row of the suite: a name and what it checks.
type behaviour struct {
	name string
	// cfg sets up the store for the behaviour; nil leaves the defaults.
	cfg func(*Config)
	run func(e *env)
}

// behaviours is the table Run goes through, grouped by concern: the
// rows live next to their code in the files named.
func behaviours() []behaviour {
	var all []behaviour
	for _, group := range [][]behaviour{
		uploadBehaviours,    // upload.go
		fileBehaviours,      // files.go
		listBehaviours,      // list.go
		resumableBehaviours, // resumable.go
		digestAtCommitRows,  // digestatcommit.go
		resumeErrBehaviours, // resumeerr.go
		usageBehaviours,     // usage.go
		outageBehaviours,    // outage.go
	} {
		all = append(all, group...)
	}
	return all
}

// Run runs every behaviour of the suite against the store h opens, each
// as a parallel subtest named after it.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.Open == nil {
		t.Fatal("storetest: Harness.Open is nil")
	}
	if h.ResumeGranularity < 0 || h.MaxOwnerLen < 0 {
		t.Fatalf("storetest: Harness.ResumeGranularity %d and MaxOwnerLen %d must not be negative", h.ResumeGranularity, h.MaxOwnerLen)
	}
	for _, b := range behaviours() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			b.run(newEnv(t, &h, b.cfg))
		})
	}
}

// Owners the behaviours use: typed identity keys as the service passes
// them.
const (
	alice = "jwt:https://issuer.example:alice"
	bob   = "jwt:https://issuer.example:bob"
)

// defaultMaxUploads is Config.MaxUploadsPerOwner unless a behaviour says
// otherwise.
const defaultMaxUploads = 16

// env is what one behaviour works with: its storage, the store in use, the
// clock and the stated differences.
type env struct {
	t     *testing.T
	h     *Harness
	ctx   context.Context
	clock *fakeclock.Clock
	st    *Storage
	s     service.ResumableStore
}

func newEnv(t *testing.T, h *Harness, set func(*Config)) *env {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	c := fakeclock.New(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	cfg := Config{Now: c.Now, MaxUploadsPerOwner: defaultMaxUploads}
	if set != nil {
		set(&cfg)
	}
	st := h.Open(t, cfg)
	if st == nil || st.Store == nil {
		t.Fatal("storetest: Harness.Open returned no store")
	}
	return &env{t: t, h: h, ctx: ctx, clock: c, st: st, s: st.Store}
}

// restart restarts the store, as Storage.Restart says.
func (e *env) restart() {
	e.t.Helper()
	if e.st.Restart == nil {
		e.t.Fatal("storetest: Storage.Restart is nil")
	}
	e.s = e.st.Restart(e.t)
	if e.s == nil {
		e.t.Fatal("storetest: Storage.Restart returned no store")
	}
}

// unit is the stated ResumeGranularity, at least 1.
func (e *env) unit() int64 { return max(e.h.ResumeGranularity, 1) }

// block is a size that spans a unit of granularity and is never tiny: the
// sizes of resumable uploads are made of blocks.
func (e *env) block() int64 { return max(e.unit(), 4<<10) }

// kept is the committed size of a resumable upload that received n bytes
// and was then suspended: n rounded down to the granularity.
func (e *env) kept(n int64) int64 { return n - n%e.unit() }

// data returns n bytes that depend only on n and seed, so that a failure
// can be reproduced and two seeds give different contents.
func data(n int64, seed uint64) []byte {
	var key [32]byte
	copy(key[:], fmt.Sprintf("storetest %d %d", n, seed))
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}
