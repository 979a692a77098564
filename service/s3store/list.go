package s3store

import (
	"context"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

// maxListKeys is the most keys one list request returns.
const maxListKeys = 1000

// List returns up to limit of owner's files whose names start with prefix
// and sort after the name after, in byte order of names, which is the
// order S3 lists keys in. It asks for one page of limit keys starting
// after after, and for another only when keys it must skip (names
// objname.Validate rejects) leave the page short. The SHA256 is filled in
// when the server returns user metadata with listings (MinIO does) and
// left zero otherwise, as the disk store does for files without their
// digest attribute. A limit of zero or less returns nothing.
func (s *Store) List(ctx context.Context, owner, prefix, after string, limit int) ([]service.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := s.ownerDir(objectsDir, owner)
	if err != nil {
		return nil, err
	}
	if err := objname.ValidatePrefix(prefix); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	fetchOwner := false
	opts := minio.ListObjectsOptions{
		Prefix:       dir + prefix,
		Recursive:    true,
		MaxKeys:      min(limit, maxListKeys),
		WithMetadata: true,
		FetchOwner:   &fetchOwner,
	}
	if after != "" {
		opts.StartAfter = dir + after
	}
	// Cancelling ends the listing after the page in hand.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []service.FileInfo
	for obj := range s.c.ListObjectsIter(lctx, s.opts.Bucket, opts) {
		if obj.Err != nil {
			return nil, s.classify(ctx, "list", prefix, obj.Err)
		}
		name, ok := strings.CutPrefix(obj.Key, dir)
		if !ok || name <= after || objname.Validate(name) != nil {
			continue
		}
		info := service.FileInfo{Name: name, Size: obj.Size, Modified: obj.LastModified}
		for k, v := range obj.UserMetadata {
			if strings.EqualFold(k, metaSHA256) || strings.EqualFold(k, "X-Amz-Meta-"+metaSHA256) {
				info.SHA256, _ = parseSHA256(v)
			}
		}
		out = append(out, info)
		if len(out) >= limit {
			break
		}
	}
	return out, nil
}

// Delete removes owner's committed file name and gives its size back to
// owner's usage. A missing name gives a service.ErrNotFound error, as on
// the disk store; deleting is otherwise idempotent, and a name deleted by
// someone else between the check and the removal is not an error.
func (s *Store) Delete(ctx context.Context, owner, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key, err := s.objectKey(owner, name)
	if err != nil {
		return err
	}
	seg, _ := ownerSegment(owner) // objectKey checked it
	defer s.keys.lock(key)()
	obj, err := s.c.StatObject(ctx, s.opts.Bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return s.classify(ctx, "delete", name, err)
	}
	if err := s.c.RemoveObject(ctx, s.opts.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s.classify(ctx, "delete", name, err)
	}
	s.counter.Settle(ctx, seg, "", amount{Bytes: -obj.Size, Objects: -1})
	return nil
}
