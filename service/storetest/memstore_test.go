package storetest_test

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storetest"
)

// memStore is a reference service.ResumableStore in memory, the suite's
// own test subject as fstest.MapFS is TestFS's: small enough to be right
// by reading, and configurable to take either side of every difference
// the Harness states, so that both sides of each behaviour are exercised
// before a real store meets them. It has no folders.
type memStore struct {
	b    *memBackend
	held map[string]bool // uploads this store's streams hold; guarded by b.mu
}

// memOptions pick a side of the stated differences.
type memOptions struct {
	unit          int64 // ResumeGranularity
	checkOnWrite  bool  // WriteChecksSize
	dropsVersions bool  // reads fail with errChanged once their version is gone
	digestFirst   bool  // !DigestAtCommit
}

// memBackend is what survives a restart: the files and the uploads.
type memBackend struct {
	mu      sync.Mutex
	opts    memOptions
	now     func() time.Time
	max     int
	quota   service.Quota
	down    bool
	files   map[string]*memFile  // by key(owner, name)
	uploads map[string]*memState // by key(owner, id)
	plain   map[*memUpload]bool  // plain uploads in progress, for usage
}

type memFile struct {
	owner string
	data  []byte
	info  service.FileInfo
}

// amount is a quantity of storage: bytes and files.
type amount struct{ bytes, objects int64 }

// errChanged is the memStore's ChangedReadErr.
var errChanged = errors.New("memstore: the version being read is gone")

const maxOwnerLen = 159

func key(owner, s string) string { return owner + "\x00" + s }

func newMemStore(opts memOptions, cfg storetest.Config) *memStore {
	b := &memBackend{opts: opts, now: cfg.Now, max: cfg.MaxUploadsPerOwner, quota: cfg.Quota,
		files: map[string]*memFile{}, uploads: map[string]*memState{}, plain: map[*memUpload]bool{}}
	return &memStore{b: b, held: map[string]bool{}}
}

// restart returns a new store on the same backend: nothing is held.
func (s *memStore) restart() *memStore { return &memStore{b: s.b, held: map[string]bool{}} }

// enter checks what every call checks and locks the backend.
func (s *memStore) enter(ctx context.Context, owner string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if owner == "" || len(owner) > maxOwnerLen {
		return service.ErrInvalidOwner
	}
	s.b.mu.Lock()
	if s.b.down {
		s.b.mu.Unlock()
		return fmt.Errorf("memstore: %w", service.ErrUnavailable)
	}
	return nil
}

// usage returns owner's usage: files, plain uploads and resumable ones.
func (b *memBackend) usage(owner string) amount {
	var a amount
	for _, f := range b.files {
		if f.owner == owner {
			a.bytes += f.info.Size
			a.objects++
		}
	}
	for u := range b.plain {
		if u.owner == owner {
			a = add(a, u.hold)
		}
	}
	for _, st := range b.uploads {
		if st.owner == owner {
			a = add(a, st.hold)
		}
	}
	return a
}

func add(a, b amount) amount { return amount{a.bytes + b.bytes, a.objects + b.objects} }

// fits checks that owner may change what it uses from cur to next.
func (b *memBackend) fits(owner string, cur, next amount) error {
	u := b.usage(owner)
	if q := b.quota.Objects; q > 0 && next.objects > cur.objects && u.objects-cur.objects+next.objects > q {
		return &service.QuotaError{Subject: service.QuotaObjects, Limit: q, Used: u.objects - cur.objects, Need: next.objects}
	}
	if q := b.quota.Bytes; q > 0 && next.bytes > cur.bytes && u.bytes-cur.bytes+next.bytes > q {
		return &service.QuotaError{Subject: service.QuotaBytes, Limit: q, Used: u.bytes - cur.bytes, Need: next.bytes}
	}
	return nil
}

// holdFor is what a new upload of owner's name that will write size
// bytes sets aside: the size beyond that of the file it replaces, and a
// file unless it replaces one.
func (b *memBackend) holdFor(owner, name string, size int64) (h amount, credit int64) {
	if f := b.files[key(owner, name)]; f != nil {
		return amount{max(0, size-f.info.Size), 0}, f.info.Size
	}
	return amount{size, 1}, 0
}

// publish checks want's preconditions and the quota, and makes data
// owner's name; hold is what the upload set aside.
func (b *memBackend) publish(owner, name string, data []byte, want service.Expect, hold amount) (service.FileInfo, error) {
	old := b.files[key(owner, name)]
	if want.CreateOnly && old != nil {
		return service.FileInfo{}, service.ErrExists
	}
	if want.HasIfMatch && (old == nil || old.info.SHA256 != want.IfMatch) {
		return service.FileInfo{}, service.ErrNotMatched
	}
	share := amount{int64(len(data)), 1}
	if old != nil {
		share = amount{int64(len(data)) - old.info.Size, 0}
	}
	if err := b.fits(owner, hold, share); err != nil {
		return service.FileInfo{}, err
	}
	info := service.FileInfo{Name: name, Size: int64(len(data)), SHA256: sha256.Sum256(data), Modified: b.now()}
	b.files[key(owner, name)] = &memFile{owner: owner, data: data, info: info}
	return info, nil
}

// verify checks size and sum against every want: sizes first.
func verify(size int64, sum [32]byte, wants ...service.Expect) error {
	for _, w := range wants {
		if w.HasSize && w.Size != size {
			return service.ErrSizeMismatch
		}
	}
	for _, w := range wants {
		if w.HasSHA256 && w.SHA256 != sum {
			return service.ErrDigestMismatch
		}
	}
	return nil
}

func (s *memStore) Stat(ctx context.Context, owner, name string) (service.FileInfo, error) {
	if err := s.enter(ctx, owner); err != nil {
		return service.FileInfo{}, err
	}
	defer s.b.mu.Unlock()
	f := s.b.files[key(owner, name)]
	if f == nil {
		return service.FileInfo{}, service.ErrNotFound
	}
	return f.info, nil
}

func (s *memStore) Open(ctx context.Context, owner, name string) (service.File, error) {
	if err := s.enter(ctx, owner); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	f := s.b.files[key(owner, name)]
	if f == nil {
		return nil, service.ErrNotFound
	}
	return &memReader{b: s.b, key: key(owner, name), f: f}, nil
}

// memReader reads the version it opened.
type memReader struct {
	b   *memBackend
	key string
	f   *memFile
}

func (r *memReader) ReadAt(p []byte, off int64) (int, error) {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if r.b.opts.dropsVersions && r.b.files[r.key] != r.f {
		return 0, errChanged
	}
	if off >= int64(len(r.f.data)) {
		return 0, io.EOF
	}
	n := copy(p, r.f.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (r *memReader) Close() error           { return nil }
func (r *memReader) Info() service.FileInfo { return r.f.info }

func (s *memStore) List(ctx context.Context, owner, prefix, after string, limit int) ([]service.FileInfo, error) {
	if err := s.enter(ctx, owner); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	var out []service.FileInfo
	for _, f := range s.b.files {
		if n := f.info.Name; f.owner == owner && strings.HasPrefix(n, prefix) && n > after {
			out = append(out, f.info)
		}
	}
	slices.SortFunc(out, func(a, b service.FileInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out[:min(len(out), max(limit, 0))], nil
}

func (s *memStore) Delete(ctx context.Context, owner, name string) error {
	if err := s.enter(ctx, owner); err != nil {
		return err
	}
	defer s.b.mu.Unlock()
	if s.b.files[key(owner, name)] == nil {
		return service.ErrNotFound
	}
	delete(s.b.files, key(owner, name))
	return nil
}

func (s *memStore) Usage(ctx context.Context, owner string) (service.Usage, error) {
	if err := s.enter(ctx, owner); err != nil {
		return service.Usage{}, err
	}
	defer s.b.mu.Unlock()
	u := s.b.usage(owner)
	return service.Usage{Bytes: u.bytes, Objects: u.objects, Quota: s.b.quota}, nil
}

func (s *memStore) Create(ctx context.Context, owner, name string) (service.Upload, error) {
	return s.CreateSized(ctx, owner, name, 0)
}

func (s *memStore) CreateSized(ctx context.Context, owner, name string, size int64) (service.Upload, error) {
	if err := s.enter(ctx, owner); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	h, credit := s.b.holdFor(owner, name, size)
	if err := s.b.fits(owner, amount{}, h); err != nil {
		return nil, err
	}
	u := &memUpload{s: s, owner: owner, name: name, credit: credit, hold: h}
	s.b.plain[u] = true
	return u, nil
}

// memUpload is a plain upload.
type memUpload struct {
	s           *memStore
	owner, name string
	credit      int64  // the size of the file it replaces
	hold        amount // guarded by s.b.mu
	data        []byte
	done        bool
	err         error
}

func (u *memUpload) Write(p []byte) (int, error) {
	b := u.s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if u.done {
		return 0, cmp.Or(u.err, errors.New("memstore: upload is over"))
	}
	if next := (amount{max(0, int64(len(u.data)+len(p))-u.credit), u.hold.objects}); b.quota.Bytes > 0 && next.bytes > u.hold.bytes {
		if err := b.fits(u.owner, u.hold, next); err != nil {
			u.end(err)
			return 0, err
		}
		u.hold = next
	}
	u.data = append(u.data, p...)
	return len(p), nil
}

func (u *memUpload) Written() int64 {
	u.s.b.mu.Lock()
	defer u.s.b.mu.Unlock()
	return int64(len(u.data))
}

func (u *memUpload) Commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	b := u.s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if u.done {
		return service.FileInfo{}, cmp.Or(u.err, errors.New("memstore: upload is over"))
	}
	err := ctx.Err()
	if err == nil && b.down {
		err = fmt.Errorf("memstore: %w", service.ErrUnavailable)
	}
	if err == nil {
		err = verify(int64(len(u.data)), sha256.Sum256(u.data), want)
	}
	var info service.FileInfo
	if err == nil {
		info, err = b.publish(u.owner, u.name, u.data, want, u.hold)
	}
	u.end(err)
	return info, err
}

func (u *memUpload) Abort() error {
	u.s.b.mu.Lock()
	defer u.s.b.mu.Unlock()
	u.end(nil)
	return nil
}

// end ends the upload with err; the caller holds s.b.mu.
func (u *memUpload) end(err error) {
	if !u.done {
		u.done, u.err = true, err
		delete(u.s.b.plain, u)
	}
}
