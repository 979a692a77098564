package s3store

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service"
)

// errNoConditionalWrites means the server ignores If-Match or
// If-None-Match on PutObject.
var errNoConditionalWrites = errors.New("the S3 server ignores conditional writes (If-Match / If-None-Match on PUT), which resumable uploads need")

// Check reports whether the store can serve: the bucket answers a list of
// one key under the prefix with these credentials, within
// Options.CheckTimeout. A nil error means healthy; every error wraps
// service.ErrUnavailable and names the problem. Check writes nothing, so
// it costs one request.
func (s *Store) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, s.opts.CheckTimeout)
	defer cancel()
	err := s.probe(pctx)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case pctx.Err() != nil:
		return fmt.Errorf("s3store: %s: no answer within %v: %w", s.opts.Endpoint, s.opts.CheckTimeout, service.ErrUnavailable)
	}
	err = s.classify(pctx, "check bucket", s.opts.Bucket, err)
	if errors.Is(err, service.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", service.ErrUnavailable, err)
}

// checkConditionalWrites writes a probe object under tmp/ three times: if
// absent (must succeed), if absent again and if its ETag is a wrong one
// (both must fail), then removes it. It returns the client's errors
// unclassified.
func (s *Store) checkConditionalWrites(ctx context.Context) error {
	key := s.opts.Prefix + tmpDir + "/probe-" + newToken()
	put := func(cond func(*minio.PutObjectOptions)) error {
		var opts minio.PutObjectOptions
		cond(&opts)
		_, err := s.c.PutObject(ctx, s.opts.Bucket, key, bytes.NewReader(nil), 0, "", "", opts)
		return err
	}
	absent := func(o *minio.PutObjectOptions) { o.SetMatchETagExcept("*") }
	if err := put(absent); err != nil {
		return err
	}
	defer s.removeKey(ctx, key)
	for _, cond := range []func(*minio.PutObjectOptions){
		absent,
		func(o *minio.PutObjectOptions) { o.SetMatchETag("00000000000000000000000000000000") },
	} {
		err := put(cond)
		if err == nil {
			return errNoConditionalWrites
		}
		if !isPreconditionFailed(err) {
			return err
		}
	}
	return nil
}
