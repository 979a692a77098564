package s3store

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
)

// Names form folders here as on the disk store: a file cannot stand where
// another file's name needs a folder ("a" and "a/b"), and such an upload
// fails with service.ErrConflict. S3 itself would store both, but MinIO
// stores "a/b" below an object "a" (and an object "a" over keys "a/...")
// and then leaves the keys below out of every listing: files no List
// shows and no usage count finds. Refusing them keeps the two stores'
// namespaces alike and every file listed.

// maxFolderChecks bounds the requests one check of a name runs at once.
const maxFolderChecks = 8

// checkFolders fails with service.ErrConflict when a folder of name, below
// the owner's key prefix dir, is a file, or when files lie below name. It
// heads every folder's key and lists one key below name, all at once. A
// commit runs it holding lockChain of the name, so that commits of this
// process cannot race it; replicas can (see the package documentation).
func (s *Store) checkFolders(parent context.Context, dir, name string) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	var (
		mu    sync.Mutex
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, maxFolderChecks)
	)
	found := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
			cancel()
		}
	}
	check := func(f func() error) {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			defer func() { <-sem }()
			if err := f(); err != nil {
				found(err)
			}
		})
	}
	for _, folder := range folders(name) {
		check(func() error {
			_, err := s.c.StatObject(ctx, s.opts.Bucket, dir+folder, minio.StatObjectOptions{})
			switch {
			case err == nil:
				return fmt.Errorf("s3store: %q: %w: %q is a file", name, service.ErrConflict, folder)
			case isNotFound(err):
				return nil
			}
			return s.classify(ctx, "check folders", name, err)
		})
	}
	check(func() error {
		for obj := range s.c.ListObjectsIter(ctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: dir + name + "/", Recursive: true, MaxKeys: 1}) {
			if obj.Err != nil {
				return s.classify(ctx, "check folders", name, obj.Err)
			}
			return fmt.Errorf("s3store: %q: %w: files lie below it", name, service.ErrConflict)
		}
		return nil
	})
	wg.Wait()
	if first == nil {
		return parent.Err() // a check may have given up waiting for its turn
	}
	return first
}

// folders returns the folders of name, outermost first: "a", "a/b" for
// "a/b/c".
func folders(name string) []string {
	var out []string
	for i := strings.IndexByte(name, '/'); i >= 0; {
		out = append(out, name[:i])
		j := strings.IndexByte(name[i+1:], '/')
		if j < 0 {
			break
		}
		i += 1 + j
	}
	return out
}

// lockChain locks, in this process, the keys of name's folders, outermost
// first, and then name's own key, below the owner's key prefix dir, and
// returns the func that unlocks them. Two chains share only the keys of
// their common folders, which both take in the same order, so lockers
// never wait on each other in a circle.
func (s *Store) lockChain(dir, name string) (unlock func()) {
	keys := append(folders(name), name)
	unlocks := make([]func(), 0, len(keys))
	for _, k := range keys {
		unlocks = append(unlocks, s.keys.lock(dir+k))
	}
	return func() {
		for i := len(unlocks) - 1; i >= 0; i-- {
			unlocks[i]()
		}
	}
}
