package diskstore

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

const (
	// DefaultMaxUploadsPerOwner is how many incomplete resumable uploads
	// one owner may have at a time unless WithMaxUploadsPerOwner says
	// otherwise.
	DefaultMaxUploadsPerOwner = 16
	// DefaultCheckpointInterval is how many bytes a resumable upload
	// receives between two saves of its progress unless
	// WithCheckpointInterval says otherwise. A save costs two fsyncs and a
	// rename; at 8 MiB they cut uploads to ext4 by 20–40 % (bench/compare),
	// and 64 MiB bounds what a crash makes a client send again.
	DefaultCheckpointInterval = 64 << 20

	partSuffix     = ".part"
	stateSuffix    = ".json"
	stateTmpSuffix = ".json.tmp"
	stateVersion   = 1
	// maxStateSize bounds how much of a state file is read; real ones are
	// a few hundred bytes.
	maxStateSize = 16 << 10
)

var _ service.ResumableStore = (*Store)(nil)

// errBadState means a state file cannot be used: it is malformed, or its
// part file is missing or shorter than the committed size.
var errBadState = errors.New("diskstore: unusable upload state")

// WithMaxUploadsPerOwner sets how many incomplete resumable uploads one
// owner may have; starting one more fails with service.ErrTooManyUploads.
// Expired uploads do not count. Zero or less means no limit. The default is
// DefaultMaxUploadsPerOwner.
func WithMaxUploadsPerOwner(n int) Option {
	return func(o *options) { o.maxUploadsPerOwner = n }
}

// WithCheckpointInterval sets how many bytes a resumable upload receives
// between two saves of its progress (a sync of the part file and a new
// state). A broken stream that the server notices is always saved; this
// bounds what a crash loses. Zero or less saves only when an upload is
// suspended. The default is DefaultCheckpointInterval.
func WithCheckpointInterval(n int64) Option {
	return func(o *options) { o.checkpointInterval = n }
}

// WithClock sets the clock that stamps resumable uploads and decides when
// they expire. The default is time.Now.
func WithClock(now func() time.Time) Option {
	return func(o *options) { o.now = now }
}

// uploadState is the content of a state file.
type uploadState struct {
	Version   int    `json:"version"`
	Name      string `json:"name"`
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"`
	Committed int64  `json:"committed"`
	// Hash is the marshalled SHA-256 state after the first Committed
	// bytes.
	Hash    []byte    `json:"hash"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// sum returns the declared SHA-256.
func (st *uploadState) sum() (sum [32]byte) {
	hex.Decode(sum[:], []byte(st.SHA256))
	return sum
}

// expired reports whether the upload was last written more than ttl before
// now. A ttl of zero or less never expires anything.
func (st *uploadState) expired(now time.Time, ttl time.Duration) bool {
	return ttl > 0 && now.Sub(st.Updated) > ttl
}

// restoreHash returns a SHA-256 hash in the state st.Hash records.
func (st *uploadState) restoreHash() (hash.Hash, error) {
	h := sha256.New()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, errors.New("diskstore: sha256 hash state cannot be restored")
	}
	if err := u.UnmarshalBinary(st.Hash); err != nil {
		return nil, err
	}
	return h, nil
}

// check validates a decoded state.
func (st *uploadState) check() error {
	var sum [32]byte
	switch {
	case st.Version != stateVersion:
		return fmt.Errorf("%w: version %d", errBadState, st.Version)
	case objname.Validate(st.Name) != nil:
		return fmt.Errorf("%w: bad name", errBadState)
	case st.Size < 0 || st.Committed < 0 || st.Committed > st.Size:
		return fmt.Errorf("%w: committed %d of %d bytes", errBadState, st.Committed, st.Size)
	case len(st.SHA256) != hex.EncodedLen(len(sum)):
		return fmt.Errorf("%w: bad sha256", errBadState)
	}
	if _, err := hex.Decode(sum[:], []byte(st.SHA256)); err != nil {
		return fmt.Errorf("%w: bad sha256", errBadState)
	}
	if _, err := st.restoreHash(); err != nil {
		return fmt.Errorf("%w: bad hash state: %w", errBadState, err)
	}
	return nil
}

// uploadLocks records which resumable uploads a stream holds.
type uploadLocks struct {
	mu   sync.Mutex
	held map[string]struct{}
}

// tryLock takes key and reports whether it was free.
func (l *uploadLocks) tryLock(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.held[key]; ok {
		return false
	}
	if l.held == nil {
		l.held = make(map[string]struct{})
	}
	l.held[key] = struct{}{}
	return true
}

// unlock releases key; the map forgets it.
func (l *uploadLocks) unlock(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.held, key)
}

// isLocked reports whether a stream holds key.
func (l *uploadLocks) isLocked(key string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.held[key]
	return ok
}

// uploadOwnerPath returns the root-relative folder of owner's incomplete
// uploads.
func uploadOwnerPath(owner string) (string, error) {
	if owner == "" || len(owner) > MaxOwnerLen {
		return "", ErrInvalidOwner
	}
	return uploadsDir + "/" + base64.RawURLEncoding.EncodeToString([]byte(owner)), nil
}

// uploadKey returns the root-relative path of upload id of owner without a
// suffix; it also names the upload's lock.
func uploadKey(owner, id string) (string, error) {
	dir, err := uploadOwnerPath(owner)
	if err != nil {
		return "", err
	}
	if err := service.ValidateUploadID(id); err != nil {
		return "", err
	}
	return dir + "/" + id, nil
}

// BeginResumable starts owner's resumable upload r.ID, or resumes it from
// its committed size. See service.ResumableStore for the errors. An
// expired or unusable earlier state is discarded and the upload starts
// anew.
func (s *Store) BeginResumable(ctx context.Context, owner string, r service.Resume) (service.ResumableUpload, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	final, err := objectPath(owner, r.Name)
	if err != nil {
		return nil, err
	}
	key, err := uploadKey(owner, r.ID)
	if err != nil {
		return nil, err
	}
	if !r.Want.HasSize || !r.Want.HasSHA256 || r.Want.Size < 0 {
		return nil, fmt.Errorf("diskstore: begin upload %q: a resumable upload must declare its size and sha256", r.ID)
	}
	if _, err := s.existingAncestor("begin upload", r.Name, path.Dir(final)); err != nil {
		return nil, err
	}
	if fi, err := s.root.Lstat(final); err == nil && fi.IsDir() {
		return nil, conflict("begin upload", r.Name, errors.New("it is a folder"))
	}
	if !s.held.tryLock(key) {
		return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadBusy}
	}
	up, err := s.begin(key, final, r)
	if err != nil {
		s.held.unlock(key)
		return nil, err
	}
	return up, nil
}

// begin resumes or creates the upload at key, whose lock the caller holds.
func (s *Store) begin(key, final string, r service.Resume) (*resumable, error) {
	st, err := s.loadState(key)
	switch {
	case err == nil && st.expired(s.opts.now(), r.TTL):
		s.opts.logger.Info("diskstore: replacing an expired upload", "upload_id", r.ID, "updated", st.Updated)
		st = nil
	case errors.Is(err, errBadState):
		s.opts.logger.Warn("diskstore: replacing an unusable upload state", "upload_id", r.ID, "err", err)
		st = nil
	case isMissing(err):
		st = nil
	case err != nil:
		return nil, fmt.Errorf("diskstore: begin upload %q: %w", r.ID, err)
	}
	if st == nil {
		if r.Offset != 0 {
			return nil, &service.UploadError{ID: r.ID, Committed: 0, Err: service.ErrOffsetMismatch}
		}
		return s.create(key, final, r)
	}
	if st.Name != r.Name || st.Size != r.Want.Size || st.sum() != r.Want.SHA256 {
		return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadMismatch}
	}
	if r.Offset != st.Committed {
		return nil, &service.UploadError{ID: r.ID, Committed: st.Committed, Err: service.ErrOffsetMismatch}
	}
	return s.reopen(key, final, r.ID, st)
}

// create starts a new upload at key, replacing whatever is left there.
func (s *Store) create(key, final string, r service.Resume) (*resumable, error) {
	s.createMu.Lock()
	defer s.createMu.Unlock()
	dir := path.Dir(key)
	if max := s.opts.maxUploadsPerOwner; max > 0 {
		n, err := s.countUploads(dir, r.ID, r.TTL)
		if err != nil {
			return nil, fmt.Errorf("diskstore: begin upload %q: %w", r.ID, err)
		}
		if n >= max {
			return nil, &service.UploadError{ID: r.ID, Err: service.ErrTooManyUploads}
		}
	}
	if _, err := s.root.Lstat(dir); isMissing(err) {
		if err := s.root.MkdirAll(dir, dirMode); err != nil {
			return nil, classify("begin upload", r.ID, err)
		}
		if err := s.syncDir(uploadsDir); err != nil {
			return nil, classify("begin upload", r.ID, err)
		}
	}
	f, err := s.root.OpenFile(key+partSuffix, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, tmpMode)
	if err != nil {
		return nil, classify("begin upload", r.ID, err)
	}
	h := sha256.New()
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("diskstore: begin upload %q: %w", r.ID, err)
	}
	now := s.opts.now()
	st := &uploadState{
		Version: stateVersion,
		Name:    r.Name,
		Size:    r.Want.Size,
		SHA256:  hex.EncodeToString(r.Want.SHA256[:]),
		Hash:    state,
		Created: now,
		Updated: now,
	}
	// The state's folder sync also makes the part file's entry durable.
	if err := s.saveState(key, st); err != nil {
		f.Close()
		s.removeUpload(key)
		return nil, classify("begin upload", r.ID, err)
	}
	return s.newResumable(key, final, r.ID, f, h, st)
}

// reopen resumes the upload at key from its committed size.
func (s *Store) reopen(key, final, id string, st *uploadState) (*resumable, error) {
	h, err := st.restoreHash()
	if err != nil {
		return nil, fmt.Errorf("diskstore: resume upload %q: %w", id, err)
	}
	f, err := s.root.OpenFile(key+partSuffix, os.O_WRONLY, 0)
	if err != nil {
		return nil, classify("resume upload", id, err)
	}
	// Bytes past the committed size were written after the last save;
	// the client sends them again.
	if err := f.Truncate(st.Committed); err != nil {
		f.Close()
		return nil, classify("resume upload", id, err)
	}
	if _, err := f.Seek(st.Committed, io.SeekStart); err != nil {
		f.Close()
		return nil, classify("resume upload", id, err)
	}
	return s.newResumable(key, final, id, f, h, st)
}

func (s *Store) newResumable(key, final, id string, f *os.File, h hash.Hash, st *uploadState) (*resumable, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, classify("begin upload", id, err)
	}
	r := &resumable{s: s, key: key, id: id, final: final, f: f, hash: h, st: *st, written: st.Committed}
	r.wb.init(rc, s.opts.writebackInterval)
	r.wb.start = st.Committed
	return r, nil
}

// loadState reads and checks the state of the upload at key. It returns an
// error satisfying isMissing if there is none, and one wrapping errBadState
// if it is unusable.
func (s *Store) loadState(key string) (*uploadState, error) {
	f, err := s.root.Open(key + stateSuffix)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateSize {
		return nil, fmt.Errorf("%w: state file too large", errBadState)
	}
	st := new(uploadState)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadState, err)
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	fi, err := s.root.Lstat(key + partSuffix)
	if isMissing(err) || (err == nil && (!fi.Mode().IsRegular() || fi.Size() < st.Committed)) {
		return nil, fmt.Errorf("%w: part file missing or short", errBadState)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// saveState replaces the state of the upload at key atomically and
// durably.
func (s *Store) saveState(key string, st *uploadState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := key + stateTmpSuffix
	f, err := s.root.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, tmpMode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.root.Rename(tmp, key+stateSuffix)
	}
	if err != nil {
		s.root.Remove(tmp)
		return err
	}
	return s.syncDir(path.Dir(key))
}

// removeUpload removes every file of the upload at key and syncs its
// folder.
func (s *Store) removeUpload(key string) error {
	var errs []error
	for _, suffix := range []string{stateSuffix, partSuffix, stateTmpSuffix} {
		if err := s.root.Remove(key + suffix); err != nil && !isMissing(err) {
			errs = append(errs, err)
		}
	}
	if err := s.syncDir(path.Dir(key)); err != nil && !isMissing(err) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// countUploads counts the unexpired incomplete uploads in the owner folder
// dir other than except. A state that cannot be read counts.
func (s *Store) countUploads(dir, except string, ttl time.Duration) (int, error) {
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if isMissing(err) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	now := s.opts.now()
	n := 0
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), stateSuffix)
		if !ok || id == except || !e.Type().IsRegular() {
			continue
		}
		st, err := s.loadState(dir + "/" + id)
		if err == nil && st.expired(now, ttl) {
			continue
		}
		n++
	}
	return n, nil
}

// QueryResumable returns the committed size of owner's incomplete upload
// id. An upload that is unknown, completed, unusable or, unless a stream
// holds it, expired per ttl gives an *service.UploadError wrapping
// service.ErrNotFound.
func (s *Store) QueryResumable(ctx context.Context, owner, id string, ttl time.Duration) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	key, err := uploadKey(owner, id)
	if err != nil {
		return 0, err
	}
	st, err := s.loadState(key)
	switch {
	case isMissing(err) || errors.Is(err, errBadState):
		return 0, &service.UploadError{ID: id, Err: service.ErrNotFound}
	case err != nil:
		return 0, fmt.Errorf("diskstore: query upload %q: %w", id, err)
	case st.expired(s.opts.now(), ttl) && !s.held.isLocked(key):
		return 0, &service.UploadError{ID: id, Err: service.ErrNotFound}
	}
	return st.Committed, nil
}

// CleanExpiredUploads removes the incomplete resumable uploads that were
// last written more than olderThan ago, and leftovers of uploads that died
// between creating their files, and returns how many uploads it removed. It
// skips uploads a stream holds and keeps going after an error, returning
// all of them joined. olderThan must be positive: incomplete uploads are
// meant to survive restarts, so there is no "remove everything".
func (s *Store) CleanExpiredUploads(olderThan time.Duration) (removed int, err error) {
	if olderThan <= 0 {
		return 0, fmt.Errorf("diskstore: clean expired uploads: olderThan must be positive, got %v", olderThan)
	}
	owners, err := fs.ReadDir(s.root.FS(), uploadsDir)
	if err != nil {
		return 0, fmt.Errorf("diskstore: clean expired uploads: %w", err)
	}
	now := s.opts.now()
	cutoff := now.Add(-olderThan)
	var errs []error
	for _, o := range owners {
		if !o.IsDir() {
			continue
		}
		dir := uploadsDir + "/" + o.Name()
		n, err := s.cleanOwner(dir, now, cutoff, olderThan)
		removed += n
		if err != nil {
			errs = append(errs, err)
		}
	}
	if removed > 0 {
		s.opts.logger.Info("diskstore: removed expired uploads", "count", removed, "older_than", olderThan)
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("diskstore: clean expired uploads: %w", err)
	}
	return removed, nil
}

// cleanOwner removes the expired uploads in the owner folder dir, then the
// folder if it is empty.
func (s *Store) cleanOwner(dir string, now, cutoff time.Time, ttl time.Duration) (removed int, err error) {
	entries, err := fs.ReadDir(s.root.FS(), dir)
	if err != nil {
		return 0, err
	}
	// Group the entries by upload ID.
	ids := make(map[string]fs.DirEntry)
	for _, e := range entries {
		name := e.Name()
		for _, suffix := range []string{stateTmpSuffix, stateSuffix, partSuffix} {
			if id, ok := strings.CutSuffix(name, suffix); ok {
				if e.Type().IsRegular() && service.ValidateUploadID(id) == nil {
					if _, seen := ids[id]; !seen || suffix == stateSuffix {
						ids[id] = e
					}
				}
				break
			}
		}
	}
	var errs []error
	for id, e := range ids {
		key := dir + "/" + id
		if !s.held.tryLock(key) {
			continue // a stream is writing it
		}
		if s.expiredLocked(key, e, now, cutoff, ttl) {
			if err := s.removeUpload(key); err != nil {
				errs = append(errs, err)
			} else {
				removed++
			}
		}
		s.held.unlock(key)
	}
	s.createMu.Lock()
	// Remove fails unless the folder is empty; a new upload cannot appear
	// in it meanwhile because creating one takes createMu.
	if err := s.root.Remove(dir); err == nil {
		if err := s.syncDir(uploadsDir); err != nil {
			errs = append(errs, err)
		}
	}
	s.createMu.Unlock()
	return removed, errors.Join(errs...)
}

// expiredLocked reports whether the upload at key, represented by the
// directory entry e (its state file if it has one), should be removed.
func (s *Store) expiredLocked(key string, e fs.DirEntry, now, cutoff time.Time, ttl time.Duration) bool {
	if strings.HasSuffix(e.Name(), stateSuffix) {
		st, err := s.loadState(key)
		if err == nil {
			return st.expired(now, ttl)
		}
	}
	// No usable state: a leftover. Judge it by its file's age.
	fi, err := e.Info()
	return err == nil && fi.ModTime().Before(cutoff)
}

// resumable is a service.ResumableUpload writing to a part file.
type resumable struct {
	s     *Store
	key   string // root-relative path without suffix; the lock's name
	id    string
	final string // root-relative path of the committed file

	mu      sync.Mutex
	f       *os.File // nil once released
	hash    hash.Hash
	wb      writeback
	st      uploadState // as last saved
	written int64
	// broken is set when a write or save failed: the part file may hold
	// bytes the saved state does not count, so nothing is saved any more
	// and the saved state stands.
	broken bool
	err    error // why the upload broke or ended, returned again
	done   bool  // released: committed, aborted, suspended or failed
}

// Write appends p to the part file and feeds the same bytes to the hash.
// Every checkpoint interval it saves the progress. A failed write or save
// breaks the upload: the state saved last stands.
func (r *resumable) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return 0, r.closedErr()
	}
	if r.broken {
		return 0, r.err
	}
	n, err := r.s.opts.writeFile(r.f, p)
	r.hash.Write(p[:n])
	r.written += int64(n)
	if err != nil {
		r.breakWith(classify("write", r.st.Name, err))
		r.dropUncommitted()
		return n, r.err
	}
	r.wb.wrote(r.written)
	if iv := r.s.opts.checkpointInterval; iv > 0 && r.written-r.st.Committed >= iv {
		if err := r.checkpoint(); err != nil {
			r.breakWith(err)
			return n, r.err
		}
	}
	return n, nil
}

// dropUncommitted gives back the space of bytes past the committed size
// after a failed write: on a full disk they would otherwise keep it full
// until the upload expires. A resume truncates to the committed size
// anyway, so nothing that counts is lost.
func (r *resumable) dropUncommitted() {
	if err := r.f.Truncate(r.st.Committed); err != nil {
		r.s.opts.logger.Warn("releasing the uncommitted bytes of a failed upload", slog.String("object", r.st.Name), slog.Any("error", err))
	}
}

// Written returns the size of the file so far, committed bytes included.
func (r *resumable) Written() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written
}

// checkpoint syncs the part file and then saves a state counting every
// byte written.
func (r *resumable) checkpoint() error {
	if err := r.f.Sync(); err != nil {
		return classify("save upload", r.st.Name, err)
	}
	m, ok := r.hash.(encoding.BinaryMarshaler)
	if !ok {
		return errors.New("diskstore: sha256 hash state cannot be saved")
	}
	state, err := m.MarshalBinary()
	if err != nil {
		return fmt.Errorf("diskstore: save upload %q: %w", r.id, err)
	}
	next := r.st
	next.Committed = r.written
	next.Hash = state
	next.Updated = r.s.opts.now()
	if err := r.s.saveState(r.key, &next); err != nil {
		return classify("save upload", r.st.Name, err)
	}
	r.st = next
	return nil
}

func (r *resumable) breakWith(err error) {
	r.broken = true
	r.err = err
}

// Suspend saves the progress and releases the upload. After a failed write
// or save it only releases the upload: the state saved last stands.
func (r *resumable) Suspend() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	return r.suspend()
}

func (r *resumable) suspend() error {
	var err error
	if !r.broken {
		err = r.checkpoint()
	}
	if cerr := r.release(); err == nil {
		err = cerr
	}
	return err
}

// release closes the part file and the lock, keeping every file.
func (r *resumable) release() error {
	r.done = true
	var err error
	if r.f != nil {
		err = r.f.Close()
		r.f = nil
	}
	r.s.held.unlock(r.key)
	if err != nil {
		return classify("release upload", r.st.Name, err)
	}
	return nil
}

// Abort discards the upload: its bytes and its state.
func (r *resumable) Abort() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return nil
	}
	return r.abort()
}

func (r *resumable) abort() error {
	r.done = true
	var errs []error
	if r.f != nil {
		if err := r.f.Close(); err != nil {
			errs = append(errs, err)
		}
		r.f = nil
	}
	if err := r.s.removeUpload(r.key); err != nil {
		errs = append(errs, err)
	}
	r.s.held.unlock(r.key)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("diskstore: abort upload %q: %w", r.id, err)
	}
	return nil
}

// Commit verifies the whole file against the size and SHA-256 the upload
// was started with (and against want), makes it durable, renames it over
// the final name, syncs the folders and deletes the upload's state. A size
// or digest mismatch discards the upload. Too few bytes, a canceled ctx or
// a failure before the rename suspend it instead (the latter without saving
// anything new), so that it can be resumed.
func (r *resumable) Commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return service.FileInfo{}, r.closedErr()
	}
	if r.broken {
		r.release()
		return service.FileInfo{}, r.err
	}
	if err := ctx.Err(); err != nil {
		r.suspend()
		return service.FileInfo{}, err
	}
	name, size := r.st.Name, r.st.Size
	if r.written < size {
		err := fmt.Errorf("diskstore: commit %q: %w: got %d bytes, declared %d", name, service.ErrSizeMismatch, r.written, size)
		if serr := r.suspend(); serr != nil {
			return service.FileInfo{}, serr
		}
		return service.FileInfo{}, err
	}
	if r.written > size || (want.HasSize && want.Size != r.written) {
		r.abort()
		return service.FileInfo{}, fmt.Errorf("diskstore: commit %q: %w: got %d bytes, declared %d", name, service.ErrSizeMismatch, r.written, size)
	}
	info := service.FileInfo{Name: name, Size: r.written}
	r.hash.Sum(info.SHA256[:0])
	if declared := r.st.sum(); info.SHA256 != declared || (want.HasSHA256 && want.SHA256 != info.SHA256) {
		r.abort()
		return service.FileInfo{}, fmt.Errorf("diskstore: commit %q: %w: got %x, declared %x", name, service.ErrDigestMismatch, info.SHA256, declared)
	}
	if err := r.finish(&info); err != nil {
		r.breakWith(err)
		r.release()
		return service.FileInfo{}, err
	}
	f := r.f
	r.f = nil
	if err := f.Close(); err != nil {
		r.breakWith(classify("commit", name, err))
		r.release()
		return service.FileInfo{}, r.err
	}
	renamed, err := r.s.place(name, r.key+partSuffix, r.final)
	if !renamed {
		r.breakWith(err)
		r.release()
		return service.FileInfo{}, err
	}
	// The bytes are published; the upload is over whatever happens next.
	if rerr := r.s.removeUpload(r.key); rerr != nil {
		// A state whose part file is gone is unusable: nobody can resume
		// it, and the janitor removes it.
		r.s.opts.logger.Warn("diskstore: removing a completed upload's state", "upload_id", r.id, "err", rerr)
	}
	r.release()
	if err != nil {
		return service.FileInfo{}, err
	}
	return info, nil
}

// finish makes the part file what a committed file is: its mode, its
// digest attribute, synced; it fills in info.Modified.
func (r *resumable) finish(info *service.FileInfo) error {
	name := r.st.Name
	if err := r.f.Chmod(fileMode); err != nil {
		return classify("commit", name, err)
	}
	if err := setDigest(r.wb.rc, info.SHA256); err != nil {
		return classify("commit", name, err)
	}
	if err := r.f.Sync(); err != nil {
		return classify("commit", name, err)
	}
	fi, err := r.f.Stat()
	if err != nil {
		return classify("commit", name, err)
	}
	info.Modified = fi.ModTime()
	return nil
}

func (r *resumable) closedErr() error {
	if r.err != nil {
		return r.err
	}
	return errClosed
}
