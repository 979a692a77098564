package client

import (
	"context"
	"crypto/sha256"
	"errors"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PartialPath returns where DownloadFile keeps the bytes of an unfinished
// download to path: ".BASE.greeter-part" in path's directory.
func PartialPath(path string) string {
	return filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".greeter-part")
}

// DownloadFile downloads name to path, retrying transient failures as the
// transfer's RetryPolicy says.
//
// The bytes go to PartialPath(path). If that file exists, from an earlier
// attempt or an earlier run, the download continues from its end (its bytes
// are hashed first, so the final check covers the whole file). Once every
// byte arrived and the size and SHA-256 of the whole file match what the
// server announced, the partial file replaces path. If they do not match,
// the partial file is discarded and the download starts over once. A
// download that fails keeps its partial file for the next try, unless the
// file is gone from the server or nothing arrived. With NoResume, an
// existing partial file is discarded first and so is the partial file of a
// failed download.
//
// Two downloads to the same path at the same time are not supported.
func (c *Client) DownloadFile(ctx context.Context, name, path string, progress Progress, opts ...TransferOption) (res Result, err error) {
	t := c.transferOptions(opts)
	res = Result{Name: name}
	part := PartialPath(path)
	if t.noResume {
		if err := os.Remove(part); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, err
		}
	}
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return res, err
	}
	d := &fileDownload{c: c, f: f, name: name, h: sha256.New(), res: &res, progress: progress}
	defer func() {
		if err == nil {
			return
		}
		f.Close()
		if t.noResume || d.got == 0 || d.discard {
			os.Remove(part)
		}
	}()
	// The partial file's bytes are the start of the file; leave the file
	// offset at their end, where the next byte goes.
	if d.got, err = copyContext(ctx, d.h, f); err != nil {
		return res, err
	}
	d.furthest = d.got
	res.Attempts, err = c.retry(ctx, t.retry, d.attempt)
	if err != nil {
		return res, err
	}
	if err = f.Sync(); err != nil {
		return res, err
	}
	if err = f.Close(); err != nil {
		return res, err
	}
	if err = os.Rename(part, path); err != nil {
		return res, err
	}
	res.Size, res.SHA256 = d.want.Size, d.want.SHA256
	return res, nil
}

// fileDownload is the state one DownloadFile keeps across its attempts.
type fileDownload struct {
	c        *Client
	f        *os.File
	name     string
	h        hash.Hash // of the bytes in f
	got      int64     // bytes in f
	furthest int64
	// want is what the first stream announced; later streams must agree.
	want      *Result
	restarted bool
	// discard is set when the partial file is useless for a later try.
	discard  bool
	res      *Result
	progress Progress
}

// attempt runs one attempt from the end of the partial file. If the
// partial file turns out not to be the start of the file the server holds,
// it truncates it and starts over, once.
func (d *fileDownload) attempt(ctx context.Context, progressed func()) (verdict, error) {
	for {
		offset := d.got
		want, err := d.c.receive(ctx, d.name, offset, d.want, d.f, d.h, &d.got, &d.res.Received, d.progress)
		if d.want == nil && want.SHA256 != "" {
			d.want = &want
		}
		if err == nil {
			err = checkFetched(want, d.got, d.h)
			if err == nil {
				return verdict{}, nil
			}
		}
		// A partial file longer than the file (OutOfRange), a file that
		// changed between attempts, or bytes that do not add up to the
		// announced file: what is on disk is not the start of this file.
		stale := status.Code(err) == codes.DataLoss || (status.Code(err) == codes.OutOfRange && offset > 0)
		if stale && !d.restarted {
			d.restarted = true
			if err := d.reset(); err != nil {
				return verdict{}, err
			}
			continue
		}
		switch status.Code(err) {
		case codes.NotFound, codes.DataLoss, codes.OutOfRange:
			d.discard = true
		}
		if d.got > d.furthest {
			d.furthest = d.got
			progressed()
		}
		return classify(err), err
	}
}

// reset empties the partial file and forgets what any stream announced.
func (d *fileDownload) reset() error {
	if err := d.f.Truncate(0); err != nil {
		return err
	}
	if _, err := d.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	d.h.Reset()
	d.got, d.furthest, d.want = 0, 0, nil
	return nil
}
