// Package storekit holds what the stores (service/diskstore,
// service/s3store) share beyond the service.Store contract: the checks of
// a commit against what the uploader declared, and the upload a stream gets
// when it resumes an upload that had completed but whose commit's answer
// was lost.
package storekit

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/greeter/greeter/service"
)

// Verify checks that an upload of name, of size bytes hashing to sum, meets
// every want: every declared size first, then every declared SHA-256. Its
// errors wrap service.ErrSizeMismatch or service.ErrDigestMismatch and start
// with store, the package name.
func Verify(store, name string, size int64, sum [32]byte, wants ...service.Expect) error {
	for _, want := range wants {
		if want.HasSize && want.Size != size {
			return SizeMismatch(store, name, size, want.Size)
		}
	}
	for _, want := range wants {
		if want.HasSHA256 && want.SHA256 != sum {
			return fmt.Errorf("%s: commit %q: %w: got %x, declared %x", store, name, service.ErrDigestMismatch, sum, want.SHA256)
		}
	}
	return nil
}

// VerifyResumable checks a resumable upload of name as Verify does, the
// expectations it was begun with (declared) first, except that bytes that
// do not hash to the declared SHA-256 give
// service.ErrResumableDigestMismatch: the upload gathered the wrong bytes,
// which only starting over mends.
func VerifyResumable(store, name string, size int64, sum [32]byte, declared, want service.Expect) error {
	if err := Verify(store, name, size, sum, declared); err != nil {
		if errors.Is(err, service.ErrDigestMismatch) {
			return fmt.Errorf("%s: commit %q: %w: got %x, declared %x", store, name, service.ErrResumableDigestMismatch, sum, declared.SHA256)
		}
		return err
	}
	return Verify(store, name, size, sum, want)
}

// SizeMismatch wraps service.ErrSizeMismatch for an upload of name that
// wrote got bytes where declared were expected.
func SizeMismatch(store, name string, got, declared int64) error {
	return fmt.Errorf("%s: commit %q: %w: got %d bytes, declared %d", store, name, service.ErrSizeMismatch, got, declared)
}

// Finished is the service.ResumableUpload of a stream that resumed, at its
// end, an upload that had completed but whose state outlived the commit
// (the process or its storage died before forgetting it, and the answer
// was lost). It takes no bytes; its Commit checks want against the file,
// forgets the upload and gives the answer the lost one would have been.
// The file's preconditions are not checked again: they held when it was
// published, and the file is this upload's.
type Finished struct {
	Store    string // the store's package name, for errors
	ID       string
	Info     service.FileInfo // the file the upload became
	Declared service.Expect   // what the upload was begun with
	// Forget removes the upload's state; a failure is the store's to log.
	Forget func(ctx context.Context)
	// Release lets the upload go (its lock, and whatever else it holds).
	Release func(ctx context.Context)
	// Closed is what Commit returns once the upload has ended.
	Closed error

	mu   sync.Mutex
	done bool
}

var _ service.ResumableUpload = (*Finished)(nil)

// Write refuses any byte: the file has all of them.
func (f *Finished) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return 0, fmt.Errorf("%s: upload %q: %w: more than the declared %d bytes", f.Store, f.ID, service.ErrSizeMismatch, f.Info.Size)
}

// Written returns the file's size.
func (f *Finished) Written() int64 { return f.Info.Size }

// Commit checks want against the file, forgets the upload and returns the
// file's info.
func (f *Finished) Commit(ctx context.Context, want service.Expect) (service.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.done {
		return service.FileInfo{}, f.Closed
	}
	defer f.end(ctx)
	if err := VerifyResumable(f.Store, f.Info.Name, f.Info.Size, f.Info.SHA256, f.Declared, want); err != nil {
		return service.FileInfo{}, err
	}
	f.Forget(ctx)
	return f.Info, nil
}

// Abort forgets the upload; the file stays, as it was committed.
func (f *Finished) Abort() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		f.Forget(context.Background())
		f.end(context.Background())
	}
	return nil
}

// Suspend releases the upload, whose state stays.
func (f *Finished) Suspend() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.done {
		f.end(context.Background())
	}
	return nil
}

// end releases the upload; the caller holds mu.
func (f *Finished) end(ctx context.Context) {
	f.done = true
	f.Release(context.WithoutCancel(ctx))
}
