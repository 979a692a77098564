package s3store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

// leaseBlock is how many bytes past what it wrote a plain upload holds
// against a bytes quota at a time, so that the counter is asked once per
// block rather than once per chunk (a shared counter costs a round trip).
// When a whole block does not fit, the upload holds exactly what it wrote.
const leaseBlock = 1 << 20

// Usage reports what owner stores (committed files, plus what its
// incomplete uploads hold) and its quota. The first call for an owner on
// this process lists its keys; see the package documentation for how the
// figure is kept up to date.
func (s *Store) Usage(ctx context.Context, owner string) (service.Usage, error) {
	if err := ctx.Err(); err != nil {
		return service.Usage{}, err
	}
	seg, err := ownerSegment(owner)
	if err != nil {
		return service.Usage{}, err
	}
	a, err := s.counter.Get(ctx, seg)
	if err != nil {
		return service.Usage{}, s.classify(ctx, "usage", "", err)
	}
	return service.Usage{Bytes: a.Bytes, Objects: a.Objects, Quota: s.quotaFor(owner)}, nil
}

// quotaFor returns owner's quota.
func (s *Store) quotaFor(owner string) service.Quota {
	if s.opts.Quotas == nil {
		return service.Quota{}
	}
	return s.opts.Quotas(owner)
}

// tally computes the usage of the owner whose key segment is seg from the
// bucket: its resumable uploads' states first (at most a few per owner),
// then its committed objects, page by page, never holding more than a page.
// Objects whose names objname.Validate rejects do not count (no client
// sees or deletes them), nor do states that cannot be used.
func (s *Store) tally(ctx context.Context, seg string) (used amount, holds map[string]amount, err error) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type upload struct {
		key  string
		size int64
	}
	uploads := make(map[string][]upload) // by the name they upload to
	udir := s.opts.Prefix + uploadsDir + "/" + seg + "/"
	for obj := range s.c.ListObjectsIter(lctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: udir}) {
		if obj.Err != nil {
			return used, nil, obj.Err
		}
		id, ok := strings.CutSuffix(strings.TrimPrefix(obj.Key, udir), stateSuffix)
		if !ok || service.ValidateUploadID(id) != nil {
			continue
		}
		st, _, err := s.loadState(ctx, obj.Key)
		if errors.Is(err, errNoState) || errors.Is(err, errBadState) {
			continue
		}
		if err != nil {
			return used, nil, err
		}
		uploads[st.Name] = append(uploads[st.Name], upload{obj.Key, st.Size})
	}
	credit := make(map[string]int64) // sizes of the files uploads replace
	odir := s.opts.Prefix + objectsDir + "/" + seg + "/"
	for obj := range s.c.ListObjectsIter(lctx, s.opts.Bucket, minio.ListObjectsOptions{Prefix: odir, Recursive: true}) {
		if obj.Err != nil {
			return used, nil, obj.Err
		}
		name := strings.TrimPrefix(obj.Key, odir)
		if objname.Validate(name) != nil {
			continue
		}
		used = used.Plus(amount{Bytes: obj.Size, Objects: 1})
		if _, ok := uploads[name]; ok {
			credit[name] = obj.Size
		}
	}
	holds = make(map[string]amount)
	for name, ups := range uploads {
		c, replaces := credit[name]
		for _, u := range ups {
			holds[u.key] = holdFor(u.size, c, replaces)
		}
	}
	return used, holds, nil
}

// holdFor is what an upload of size bytes holds: the bytes beyond the
// size (credit) of the file it replaces, and one object unless it
// replaces one.
func holdFor(size, credit int64, replaces bool) amount {
	if !replaces {
		return amount{Bytes: size, Objects: 1}
	}
	return amount{Bytes: max(0, size-credit), Objects: 0}
}

// reservation is an upload's share of its owner's usage: the hold it
// keeps under key.
type reservation struct {
	s     *Store
	owner string // key segment
	key   string // the hold's key
	final string // the file's key
	name  string
	quota service.Quota

	held amount // what the hold is
	// credit is the size of the file the upload replaces, once looked up
	// (looked); a plain upload looks only when a quota refuses it.
	credit   int64
	replaces bool
	looked   bool
}

// reserve sets aside what an upload of size bytes (0 for a plain upload
// of unknown size, whose hold grows as it writes) to owner's name, at the key final, holds,
// or fails with a *service.QuotaError. key is the state key of a resumable
// upload, or "" for a plain one, which gets a key of its own. A resumable
// upload looks up the file it replaces at once; a plain one only if a
// quota refuses it.
func (s *Store) reserve(ctx context.Context, owner, name, final, key string, size int64) (*reservation, error) {
	seg, err := ownerSegment(owner)
	if err != nil {
		return nil, err
	}
	r := &reservation{s: s, owner: seg, key: key, final: final, name: name, quota: s.quotaFor(owner)}
	if key == "" {
		var b [12]byte
		rand.Read(b[:])
		r.key = localHoldPrefix + hex.EncodeToString(b[:])
	} else if err := r.look(ctx); err != nil {
		return nil, err
	}
	err = r.set(ctx, holdFor(size, r.credit, r.replaces))
	// Without a look, a plain upload is taken for a new file: a refusal may
	// only mean the file it replaces was not credited.
	if errors.Is(err, service.ErrQuotaExceeded) && !r.looked {
		if err = r.look(ctx); err == nil {
			err = r.set(ctx, holdFor(size, r.credit, r.replaces))
		}
	}
	if err != nil {
		return nil, r.wrap(ctx, err)
	}
	return r, nil
}

// look finds the size of the file the upload replaces, if any.
func (r *reservation) look(ctx context.Context) error {
	t, err := r.s.headTarget(ctx, r.final, r.name)
	if err != nil {
		return err
	}
	r.credit, r.replaces, r.looked = t.size, t.exists, true
	return nil
}

// set makes a the hold. It fails with a *service.QuotaError, or with the
// classified error of counting the owner.
func (r *reservation) set(ctx context.Context, a amount) error {
	err := r.s.counter.Reserve(ctx, r.owner, r.key, a, amount{Bytes: r.quota.Bytes, Objects: r.quota.Objects})
	var qe *coordination.QuotaError
	switch {
	case errors.As(err, &qe):
		subject := service.QuotaBytes
		if qe.Objects {
			subject = service.QuotaObjects
		}
		return &service.QuotaError{Subject: subject, Limit: qe.Limit, Used: qe.Used, Need: qe.Need}
	case err != nil:
		return r.s.classify(ctx, "usage", r.name, err)
	}
	r.held = a
	return nil
}

// wrap names the upload in a quota refusal; other errors are classified
// already.
func (r *reservation) wrap(_ context.Context, err error) error {
	if errors.Is(err, service.ErrQuotaExceeded) {
		return fmt.Errorf("s3store: %q: %w", r.name, err)
	}
	return err
}

// grow makes a plain upload's hold cover written bytes while its owner has
// a bytes quota, leasing leaseBlock bytes ahead, or fails with a
// *service.QuotaError. A refusal looks up the file the upload replaces,
// whose size it may use, before it stands.
func (r *reservation) grow(ctx context.Context, written int64) error {
	if r.quota.Bytes <= 0 {
		return nil
	}
	for {
		need := max(0, written-r.credit)
		if need <= r.held.Bytes {
			return nil
		}
		objects := r.held.Objects
		if r.replaces {
			objects = 0
		}
		err := r.set(ctx, amount{Bytes: need + leaseBlock, Objects: objects})
		if errors.Is(err, service.ErrQuotaExceeded) {
			err = r.set(ctx, amount{Bytes: need, Objects: objects})
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, service.ErrQuotaExceeded) || r.looked {
			return r.wrap(ctx, err)
		}
		if err := r.look(ctx); err != nil {
			return r.wrap(ctx, err)
		}
	}
}

// commitShare holds what publishing the file, of size bytes, over the
// target t adds to the owner's usage, before the write that publishes it,
// or fails with a *service.QuotaError.
func (r *reservation) commitShare(ctx context.Context, size int64, t target) (amount, error) {
	share := amount{Bytes: size, Objects: 1}
	if t.exists {
		share = amount{Bytes: size - t.size, Objects: 0}
	}
	if err := r.set(ctx, share); err != nil {
		return share, r.wrap(ctx, err)
	}
	return share, nil
}

// settle counts share, which the upload published, as committed storage
// and drops the hold.
func (r *reservation) settle(ctx context.Context, share amount) {
	r.s.counter.Settle(ctx, r.owner, r.key, share)
	r.held = amount{}
}

// release drops the hold. It is safe to call on nil and more than once.
func (r *reservation) release(ctx context.Context) {
	if r == nil {
		return
	}
	r.s.counter.Release(ctx, r.owner, r.key)
	r.held = amount{}
}
