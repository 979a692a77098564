package servicetest

import (
	"context"
	"sync"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

// Store is the disk store the service runs on, observed: after every write
// to an upload, plain or resumable, it notes how many bytes the upload's
// file holds, so that a test can wait for the server to reach a point of an
// upload without sleeping (see Reached).
type Store struct {
	*diskstore.Store

	mu      sync.Mutex
	waiters []waiter
}

type waiter struct {
	size    int64
	reached chan struct{}
}

// Reached returns a channel that is closed once an upload's file holds at
// least n bytes after a write that happens after the call.
func (s *Store) Reached(n int64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := waiter{size: n, reached: make(chan struct{})}
	s.waiters = append(s.waiters, w)
	return w.reached
}

// wrote notes that an upload's file holds size bytes.
func (s *Store) wrote(size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.waiters[:0]
	for _, w := range s.waiters {
		if size >= w.size {
			close(w.reached)
			continue
		}
		kept = append(kept, w)
	}
	clear(s.waiters[len(kept):])
	s.waiters = kept
}

// Create starts an observed plain upload.
func (s *Store) Create(ctx context.Context, owner, name string) (service.Upload, error) {
	up, err := s.Store.Create(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	return &observedUpload{Upload: up, s: s}, nil
}

// CreateSized starts an observed plain upload of a declared size.
func (s *Store) CreateSized(ctx context.Context, owner, name string, size int64) (service.Upload, error) {
	up, err := s.Store.CreateSized(ctx, owner, name, size)
	if err != nil {
		return nil, err
	}
	return &observedUpload{Upload: up, s: s}, nil
}

// BeginResumable starts or resumes an observed resumable upload.
func (s *Store) BeginResumable(ctx context.Context, owner string, r service.Resume) (service.ResumableUpload, error) {
	up, err := s.Store.BeginResumable(ctx, owner, r)
	if err != nil {
		return nil, err
	}
	return &observedResumable{ResumableUpload: up, s: s}, nil
}

type observedUpload struct {
	service.Upload
	s *Store
}

func (u *observedUpload) Write(b []byte) (int, error) {
	n, err := u.Upload.Write(b)
	u.s.wrote(u.Upload.Written())
	return n, err
}

type observedResumable struct {
	service.ResumableUpload
	s *Store
}

func (u *observedResumable) Write(b []byte) (int, error) {
	n, err := u.ResumableUpload.Write(b)
	u.s.wrote(u.ResumableUpload.Written())
	return n, err
}

// plainStore hides the resumable uploads of a store, like a store that
// cannot keep them.
type plainStore struct{ service.Store }

var (
	_ service.ResumableStore = (*Store)(nil)
	_ service.Store          = plainStore{}
)
