package storetest_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/greeter/greeter/service"
)

// memState is a resumable upload of the memStore: it keeps whole units
// only, as an object store keeps whole parts.
type memState struct {
	owner, name string
	want        service.Expect // the declared size and digest
	data        []byte         // the committed bytes
	hold        amount
	updated     time.Time
	// completed is set on a state put back after its commit, whose
	// answer was lost (see lostAnswer); data is then the whole file.
	completed *service.FileInfo
}

func (st *memState) expired(now time.Time, ttl time.Duration) bool {
	return ttl > 0 && now.Sub(st.updated) > ttl
}

func (s *memStore) BeginResumable(ctx context.Context, owner string, r service.Resume) (service.ResumableUpload, error) {
	if err := service.ValidateUploadID(r.ID); err != nil {
		return nil, err
	}
	if !r.Want.HasSize || r.Want.Size < 0 {
		return nil, errors.New("memstore: a resumable upload must declare its size")
	}
	if !r.Want.HasSHA256 && s.b.opts.digestFirst {
		return nil, service.ErrDigestRequired
	}
	if err := s.enter(ctx, owner); err != nil {
		return nil, err
	}
	defer s.b.mu.Unlock()
	k := key(owner, r.ID)
	if s.held[k] {
		return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadBusy}
	}
	now := s.b.now()
	st := s.b.uploads[k]
	if st != nil && st.expired(now, r.TTL) {
		delete(s.b.uploads, k)
		st = nil
	}
	if st == nil {
		if r.Offset != 0 {
			return nil, &service.UploadError{ID: r.ID, Err: service.ErrOffsetMismatch}
		}
		n := 0
		for uk, u := range s.b.uploads {
			if u.owner == owner && uk != k && !u.expired(now, r.TTL) {
				n++
			}
		}
		if n >= s.b.max {
			return nil, &service.UploadError{ID: r.ID, Err: service.ErrTooManyUploads}
		}
		h, _ := s.b.holdFor(owner, r.Name, r.Want.Size)
		if err := s.b.fits(owner, amount{}, h); err != nil {
			return nil, err
		}
		st = &memState{owner: owner, name: r.Name, want: r.Want, hold: h, updated: now}
		s.b.uploads[k] = st
	} else {
		if st.name != r.Name || st.want.Size != r.Want.Size || st.want.HasSHA256 != r.Want.HasSHA256 || st.want.SHA256 != r.Want.SHA256 {
			return nil, &service.UploadError{ID: r.ID, Err: service.ErrUploadMismatch}
		}
		if r.Offset != int64(len(st.data)) {
			return nil, &service.UploadError{ID: r.ID, Committed: int64(len(st.data)), Err: service.ErrOffsetMismatch}
		}
	}
	s.held[k] = true
	return &memResumable{s: s, key: k, id: r.ID, st: st}, nil
}

func (s *memStore) QueryResumable(ctx context.Context, owner, id string, ttl time.Duration) (int64, error) {
	if err := service.ValidateUploadID(id); err != nil {
		return 0, err
	}
	if err := s.enter(ctx, owner); err != nil {
		return 0, err
	}
	defer s.b.mu.Unlock()
	st := s.b.uploads[key(owner, id)]
	if st == nil || (st.expired(s.b.now(), ttl) && !s.held[key(owner, id)]) {
		return 0, &service.UploadError{ID: id, Err: service.ErrNotFound}
	}
	return int64(len(st.data)), nil
}

// memResumable is a stream's hold on a memState. Bytes past the last
// whole unit wait in buf, and are lost when the stream ends.
type memResumable struct {
	s      *memStore
	key    string
	id     string
	st     *memState
	buf    []byte
	broken error
	done   bool
}

// errOver is the error of a stream that ended.
var errOver = errors.New("memstore: upload is over")

func (r *memResumable) Write(p []byte) (int, error) {
	b := r.s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case r.done:
		return 0, errOver
	case r.broken != nil:
		return 0, r.broken
	case r.st.completed != nil && len(p) > 0:
		return 0, fmt.Errorf("memstore: the upload completed: %w", service.ErrSizeMismatch)
	case b.opts.checkOnWrite && int64(len(r.st.data)+len(r.buf)+len(p)) > r.st.want.Size:
		r.broken = fmt.Errorf("memstore: more than the declared size: %w", service.ErrSizeMismatch)
		return 0, r.broken
	}
	r.buf = append(r.buf, p...)
	unit := int(max(b.opts.unit, 1))
	if whole := len(r.buf) / unit * unit; whole > 0 {
		r.st.data = append(r.st.data, r.buf[:whole]...)
		r.buf = slices.Clone(r.buf[whole:])
		r.st.updated = b.now()
	}
	return len(p), nil
}

func (r *memResumable) Written() int64 {
	r.s.b.mu.Lock()
	defer r.s.b.mu.Unlock()
	if r.done {
		return int64(len(r.st.data))
	}
	return int64(len(r.st.data) + len(r.buf))
}

func (r *memResumable) Suspend() error {
	r.s.b.mu.Lock()
	defer r.s.b.mu.Unlock()
	if r.done {
		return nil
	}
	if r.s.b.down {
		r.release()
		return fmt.Errorf("memstore: %w", service.ErrUnavailable)
	}
	if r.broken == nil {
		r.st.updated = r.s.b.now()
	}
	r.release()
	return nil
}

// release ends the stream, keeping the upload; the caller holds s.b.mu.
func (r *memResumable) release() {
	r.done = true
	r.buf = nil
	delete(r.s.held, r.key)
}

// discard ends the stream and the upload; the caller holds s.b.mu.
func (r *memResumable) discard() {
	if r.s.b.uploads[r.key] == r.st {
		delete(r.s.b.uploads, r.key)
	}
	r.release()
}

func (r *memResumable) Abort() error {
	r.s.b.mu.Lock()
	defer r.s.b.mu.Unlock()
	if !r.done {
		r.discard()
	}
	return nil
}

func (r *memResumable) Commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	b := r.s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case r.done:
		return service.FileInfo{}, errOver
	case r.broken != nil:
		r.release()
		return service.FileInfo{}, r.broken
	case b.down:
		r.release()
		return service.FileInfo{}, fmt.Errorf("memstore: %w", service.ErrUnavailable)
	}
	if err := ctx.Err(); err != nil {
		r.release()
		return service.FileInfo{}, err
	}
	if done := r.st.completed; done != nil {
		// The answer of the lost commit; CreateOnly held then.
		r.discard()
		if err := verify(done.Size, done.SHA256, r.st.want, want); err != nil {
			return service.FileInfo{}, err
		}
		return *done, nil
	}
	all := append(slices.Clone(r.st.data), r.buf...)
	if int64(len(all)) < r.st.want.Size {
		r.release()
		return service.FileInfo{}, service.ErrSizeMismatch
	}
	declared := r.st.want
	if !declared.HasSHA256 {
		if !want.HasSHA256 {
			r.release()
			return service.FileInfo{}, service.ErrDigestRequired
		}
		declared.SHA256, declared.HasSHA256 = want.SHA256, true
	}
	sum := sha256.Sum256(all)
	err := verify(int64(len(all)), sum, declared)
	if errors.Is(err, service.ErrDigestMismatch) {
		err = service.ErrResumableDigestMismatch
	}
	if err == nil {
		err = verify(int64(len(all)), sum, want)
	}
	if err != nil {
		r.discard()
		return service.FileInfo{}, err
	}
	info, err := b.publish(r.st.owner, r.st.name, all, want, r.st.hold)
	if err != nil {
		r.discard()
		return service.FileInfo{}, err
	}
	r.discard()
	return info, nil
}

// lostAnswer is the harness's Storage.LoseCommitAnswer: restore puts
// owner's upload id back as it was before its commit, with the file's info
// as the answer the retry gets.
func (s *memStore) lostAnswer(t *testing.T, owner, id string) func(*testing.T) {
	s.b.mu.Lock()
	st := s.b.uploads[key(owner, id)]
	s.b.mu.Unlock()
	if st == nil {
		t.Fatalf("memstore: no upload %q to lose the commit answer of", id)
	}
	return func(t *testing.T) {
		s.b.mu.Lock()
		defer s.b.mu.Unlock()
		f := s.b.files[key(owner, st.name)]
		if f == nil {
			t.Fatalf("memstore: upload %q left no file", id)
		}
		again := *st
		info := f.info
		again.data, again.completed = slices.Clone(f.data), &info
		s.b.uploads[key(owner, id)] = &again
	}
}
