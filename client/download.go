package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"os"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
	"github.com/greeter/greeter/proto/wire/codec"
)

// Download writes the file name to w in one attempt (a writer cannot be
// rewound; DownloadFile retries and resumes) and checks that what arrived
// has the size and SHA-256 the server announced.
func (c *Client) Download(ctx context.Context, name string, w io.Writer, progress Progress) (Result, error) {
	res := Result{Name: name, Attempts: 1}
	s := &sink{w: w, h: sha256.New(), progress: progress}
	err := c.receive(ctx, name, s)
	res.Received = s.received
	if err == nil {
		err = s.verify()
	}
	if err != nil {
		return res, err
	}
	res.Size, res.SHA256 = s.want.Size, s.want.SHA256
	return res, nil
}

// sink is where the streams of one download deliver the file: its writer,
// the hash and length of what the writer holds, and what the server
// announced. A resumed stream continues the file at the sink's length.
type sink struct {
	w io.Writer
	h hash.Hash // of the bytes in w
	// got is the number of bytes of the file in w.
	got int64
	// received counts the bytes every stream delivered, including any
	// later discarded.
	received int64
	// want is what the first stream announced about the whole file; the
	// streams after it must announce the same. It is nil until a stream
	// announced it.
	want     *Result
	progress Progress
}

// write adds a chunk of the file to the sink.
func (s *sink) write(chunk []byte) error {
	s.received += int64(len(chunk))
	if int64(len(chunk)) > s.want.Size-s.got {
		return status.Errorf(codes.DataLoss, "server sent more than the %d bytes it announced", s.want.Size)
	}
	if _, err := s.w.Write(chunk); err != nil {
		return err
	}
	s.h.Write(chunk)
	s.got += int64(len(chunk))
	s.report()
	return nil
}

// report passes the sink's length and the announced size to the progress
// callback, if any.
func (s *sink) report() {
	if s.progress != nil {
		s.progress(s.got, s.want.Size)
	}
}

// verify compares what the sink holds with what the server announced.
func (s *sink) verify() error {
	var want Result
	if s.want != nil {
		want = *s.want
	}
	if sum := hex.EncodeToString(s.h.Sum(nil)); s.got != want.Size || sum != want.SHA256 {
		return status.Errorf(codes.DataLoss, "downloaded %d bytes with sha256 %s, server announced %d bytes with sha256 %s", s.got, sum, want.Size, want.SHA256)
	}
	return nil
}

// reset forgets the sink's bytes and what any stream announced; the
// caller empties the writer.
func (s *sink) reset() {
	s.h.Reset()
	s.got, s.want = 0, nil
}

// errChanged means the file on the server is no longer the one an earlier
// attempt of the same download announced.
var errChanged = status.Error(codes.DataLoss, "the file changed on the server during the download")

// receive runs one DownloadFile stream of name, from the sink's length on,
// into s. The first announcement of the whole file is kept in s.want; if a
// later stream announces something else, receive returns errChanged before
// writing anything.
func (c *Client) receive(ctx context.Context, name string, s *sink) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The transfer codec decodes each chunk with one copy into a pooled
	// buffer that msg reuses; the proto codec would allocate every chunk.
	stream, err := c.rpc.DownloadFile(ctx, &pb.MetaData{Filename: name, Offset: s.got}, grpc.ForceCodecV2(codec.Codec{}))
	if err != nil {
		return err
	}
	hdr, err := stream.Header()
	if err != nil {
		return err
	}
	want, err := announced(hdr)
	if err != nil {
		// The call may have failed before sending headers; prefer its status.
		if _, rerr := stream.Recv(); rerr != nil && rerr != io.EOF {
			return rerr
		}
		return err
	}
	want.Name = name
	if s.want == nil {
		s.want = &want
	} else if want.Size != s.want.Size || want.SHA256 != s.want.SHA256 {
		return errChanged
	}
	s.report()
	var msg codec.FileResponse
	defer msg.Reset()
	for {
		err := stream.RecvMsg(&msg)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.write(msg.GetChunkData()); err != nil {
			return err
		}
	}
}

// announced reads the size and SHA-256 a download announces in its headers.
func announced(md metadata.MD) (Result, error) {
	sizes, sums := md.Get(wire.HeaderSize), md.Get(wire.HeaderSHA256)
	if len(sizes) != 1 || len(sums) != 1 {
		return Result{}, status.Error(codes.Internal, "server did not announce the file's size and sha256")
	}
	size, err := strconv.ParseInt(sizes[0], 10, 64)
	if err != nil || size < 0 {
		return Result{}, status.Errorf(codes.Internal, "server announced an invalid size %q", sizes[0])
	}
	return Result{Size: size, SHA256: sums[0]}, nil
}

// DownloadFile downloads name to path, retrying transient failures as the
// transfer's RetryPolicy says.
//
// The bytes go to PartialPath(path). If that file exists, from an earlier
// attempt or an earlier run, the download continues from its end (its bytes
// are hashed first, so the final check covers the whole file). Once every
// byte arrived and the size and SHA-256 of the whole file match what the
// server announced, the partial file replaces path. If they do not match,
// the partial file is emptied and the download starts over once. A
// download that fails keeps its partial file for the next try, unless the
// file is gone from the server or nothing arrived. With NoResume, an
// existing partial file is emptied first and the partial file of a failed
// download is removed.
//
// The partial file is opened without following a symbolic link, and used
// only if it is the caller's own regular file with no other hard link and
// not writable by group or others; otherwise DownloadFile fails with
// ErrUnsafePartial and leaves it alone. A download holds an exclusive lock
// on its partial file (flock, on systems that have it) until the file is
// renamed or removed; a second download to the same path meanwhile fails
// at once with ErrDownloadInProgress.
func (c *Client) DownloadFile(ctx context.Context, name, path string, progress Progress, opts ...TransferOption) (res Result, err error) {
	t := c.transferOptions(opts)
	res = Result{Name: name}
	part, err := openPartial(path)
	if err != nil {
		return res, err
	}
	d := &fileDownload{c: c, f: part.File, name: name, s: sink{w: part.File, h: sha256.New(), progress: progress}}
	defer func() {
		if err != nil {
			part.abandon(t.noResume || d.s.got == 0 || d.discard)
		}
	}()
	if t.noResume {
		if err = d.reset(); err != nil {
			return res, err
		}
	}
	// The partial file's bytes are the start of the file; leave the file
	// offset at their end, where the next byte goes.
	if d.s.got, err = copyContext(ctx, d.s.h, part.File); err != nil {
		return res, err
	}
	d.furthest = d.s.got
	res.Attempts, err = c.retry(ctx, t.retry, d.attempt)
	res.Received = d.s.received
	if err != nil {
		return res, err
	}
	if err = part.commit(); err != nil {
		return res, err
	}
	res.Size, res.SHA256 = d.s.want.Size, d.s.want.SHA256
	return res, nil
}

// fileDownload is the state one DownloadFile keeps across its attempts.
type fileDownload struct {
	c    *Client
	f    *os.File // the partial file
	name string
	// s delivers into f; its length is the partial file's.
	s        sink
	furthest int64
	// restarted is set once the partial file was found stale and emptied.
	restarted bool
	// discard is set when the partial file is useless for a later try.
	discard bool
}

// attempt runs one attempt from the end of the partial file. If the
// partial file turns out not to be the start of the file the server holds,
// it truncates it and starts over, once.
func (d *fileDownload) attempt(ctx context.Context, progressed func()) (verdict, error) {
	for {
		offset := d.s.got
		err := d.c.receive(ctx, d.name, &d.s)
		if err == nil {
			err = d.s.verify()
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
		if d.s.got > d.furthest {
			d.furthest = d.s.got
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
	d.s.reset()
	d.furthest = 0
	return nil
}
