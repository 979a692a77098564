package s3store

import (
	"context"
	"errors"
	"io"

	"github.com/minio/minio-go/v7"
)

// errPartEnded is what a write into a part stream gets once its request
// has ended, if the request itself gave no error.
var errPartEnded = errors.New("s3store: part upload ended before its bytes did")

// partStream is one part of a multipart upload sent while its bytes
// arrive: Write hands them through an io.Pipe to a PutObjectPart that runs
// in its own goroutine, so the upload holds no copy of the part, and
// receiving and sending overlap. Its length is fixed when it starts, since
// S3 wants it before the body. The body cannot be rewound, so the client
// library does not retry it: a part that fails fails its upload, and the
// uploader resends from the last committed part.
type partStream struct {
	number int
	size   int64 // the part's length
	sent   int64 // bytes handed to the request so far

	pw *io.PipeWriter
	// stopBody stops ctx's end from cutting the body off; once all bytes
	// have gone, only reqCtx ends the request.
	stopBody func() bool
	done     chan struct{} // closed when the request has ended
	part     minio.CompletePart
	err      error // the request's error, valid once done is closed
}

// startPart starts uploading part number, of size bytes, of the multipart
// upload uploadID of key, once a slot among the store's concurrent part
// uploads is free. The slot is held until the request ends. ctx ends the
// wait for a slot and cuts the body off while bytes are still to come (the
// server never stores a part whose body broke); reqCtx ends the request,
// also once the body is whole, so a part that is settling when ctx ends
// can still be stored if reqCtx lives on.
func (s *Store) startPart(ctx, reqCtx context.Context, key, uploadID string, number int, size int64) (*partStream, error) {
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	pr, pw := io.Pipe()
	ps := &partStream{number: number, size: size, pw: pw, done: make(chan struct{})}
	// The transport waits for the body before it gives up a request whose
	// ctx ended: a body idle in the pipe must end with ctx.
	ps.stopBody = context.AfterFunc(ctx, func() { pr.CloseWithError(context.Cause(ctx)) })
	go func() {
		defer func() { <-s.sem }()
		defer close(ps.done)
		p, err := s.c.PutObjectPart(reqCtx, s.opts.Bucket, key, uploadID, number, pr, size, minio.PutObjectPartOptions{})
		ps.stopBody()
		// A request that ended early (an error answer, ctx) leaves the
		// writer blocked in the pipe: let it go with the reason.
		pr.CloseWithError(orEnded(err))
		ps.part, ps.err = minio.CompletePart{PartNumber: number, ETag: p.ETag}, err
	}()
	return ps, nil
}

// left returns how many bytes the part still takes.
func (ps *partStream) left() int64 { return ps.size - ps.sent }

// Write sends p, which must fit in what the part still takes, and returns
// once the request has taken it. If the request ended, it returns the
// request's error.
func (ps *partStream) Write(p []byte) (int, error) {
	n, err := ps.pw.Write(p)
	ps.sent += int64(n)
	if err != nil {
		<-ps.done
		if ps.err != nil {
			return n, ps.err
		}
		return n, err
	}
	return n, nil
}

// finish ends the body of a part that got all its bytes and returns the
// part as the server stored it.
func (ps *partStream) finish() (minio.CompletePart, error) {
	ps.end()
	return ps.answer()
}

// end ends the body of a part that got all its bytes: from here on only
// the request's own context can end it.
func (ps *partStream) end() {
	ps.stopBody()
	ps.pw.Close()
}

// answer waits for the request of a part whose body ended and returns the
// part as the server stored it.
func (ps *partStream) answer() (minio.CompletePart, error) {
	<-ps.done
	if ps.err != nil {
		return minio.CompletePart{}, ps.err
	}
	if ps.sent != ps.size {
		return minio.CompletePart{}, errPartEnded
	}
	return ps.part, nil
}

// cancel ends the part's request unfinished, and waits for it to end, so
// that the server never stores it.
func (ps *partStream) cancel() {
	ps.pw.CloseWithError(errPartCancelled)
	<-ps.done
}

// errPartCancelled is the body error of a part given up before its end:
// the request fails rather than sending a short body.
var errPartCancelled = errors.New("s3store: part upload cancelled")

// orEnded returns err, or errPartEnded if it is nil.
func orEnded(err error) error {
	if err == nil {
		return errPartEnded
	}
	return err
}

// settling is a part whose bytes have all gone, awaiting the server's
// answer (and, for a resumable upload, the state that counts it) on its
// own goroutine while the next part streams. S3 answers a part only once
// it has stored it, about 20 ms for 16 MiB on MinIO here: waiting for that
// before reading on stalled every upload once per part. An upload has at
// most one part settling, and waits for it before the next one settles,
// before it commits and before it lets go; the part keeps its slot among
// the store's concurrent part uploads until its request ends.
type settling struct {
	done  chan struct{}
	err   error
	apply func() // what the answer changes in the upload; run by wait
}

// settle runs work on its own goroutine. work must not touch the upload's
// fields: it returns, on success, the function that applies its result,
// which wait runs on the caller's goroutine.
func (s *Store) settle(work func() (func(), error)) *settling {
	st := &settling{done: make(chan struct{})}
	s.settles.Add(1)
	go func() {
		defer s.settles.Done()
		defer close(st.done)
		if s.onSettle != nil {
			s.onSettle()
		}
		st.apply, st.err = work()
	}()
	return st
}

// wait waits for the part to settle, applies its result and returns its
// error. A nil settling gives nil. Callers drop the settling after it.
func (st *settling) wait() error {
	if st == nil {
		return nil
	}
	<-st.done
	if st.err != nil {
		return st.err
	}
	st.apply()
	return nil
}

// failed reports, without waiting, whether the part settled with an error.
func (st *settling) failed() bool {
	if st == nil {
		return false
	}
	select {
	case <-st.done:
		return st.err != nil
	default:
		return false
	}
}
