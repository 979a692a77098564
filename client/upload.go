package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire/codec"
)

// Upload stores the bytes of r under name in one attempt: a reader cannot
// be rewound, so nothing is retried or resumed (UploadFile does both).
// size, when not negative, is declared to the server, which then refuses
// anything else. The SHA-256 the server reports is compared with the one
// computed while sending, which the last message also declares (an
// UploadTrailer), so the server checks it before it stores anything. Of
// opts, only the preconditions CreateOnly and IfMatch apply.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64, progress Progress, opts ...TransferOption) (Result, error) {
	res := Result{Name: name, Attempts: 1}
	md := c.transferOptions(opts).metadata(name)
	if size >= 0 {
		md.Size = &size
	}
	h := sha256.New()
	resp, _, err := c.send(ctx, md, r, -1, h, &res.Sent, trailerFrom(h, &res.Sent), func(n int64) {
		if progress != nil {
			progress(n, size)
		}
	})
	if err != nil {
		return res, err
	}
	local := hex.EncodeToString(h.Sum(nil))
	if err := checkStored(resp, res.Sent, local); err != nil {
		return res, err
	}
	res.Size, res.SHA256 = res.Sent, local
	return res, nil
}

// send runs one UploadFile stream: md, then the bytes of r in chunks, then
// the trailer end returns (when end is not nil; when it fails, the stream
// is canceled instead). When want is not
// negative, r must yield exactly want bytes. Every byte sent is also
// written to h (when not nil) and counted in *sent, and report is called
// with the bytes this stream sent so far. reachedEnd reports that
// every byte was sent and the stream half-closed, so a failure came while
// waiting for the server's answer.
func (c *Client) send(ctx context.Context, md *pb.MetaData, r io.Reader, want int64, h io.Writer, sent *int64,
	end func() (*pb.UploadFileRequest, error), report func(int64)) (resp *pb.StringResponse, reachedEnd bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The transfer codec sends each chunk from its pooled buffer, which
	// grpc returns to the pool once written: no copy into a marshal buffer.
	stream, err := c.rpc.UploadFile(ctx, grpc.ForceCodecV2(codec.Codec{}))
	if err != nil {
		return nil, false, err
	}
	if err := stream.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}); err != nil {
		return nil, false, uploadErr(stream, err)
	}
	var msg codec.UploadFileRequest
	defer msg.Reset()
	var n int64
	for {
		buf := codec.Buffer(c.chunk)
		k, rerr := io.ReadFull(r, *buf)
		if k == 0 {
			codec.PutBuffer(buf)
		} else {
			*buf = (*buf)[:k]
			// Hashed before it is sent: afterwards the buffer is grpc's. A
			// chunk whose Send fails ends the attempt, and the next one
			// hashes from its own offset (runningHash.seek).
			if h != nil {
				h.Write(*buf)
			}
			msg.SetChunk(buf)
			if err := stream.SendMsg(&msg); err != nil {
				return nil, false, uploadErr(stream, err)
			}
			msg.Reset()
			n += int64(k)
			*sent += int64(k)
			report(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, false, fmt.Errorf("reading upload source: %w", rerr)
		}
	}
	if want >= 0 && n != want {
		// Returning cancels the stream: a resumable upload keeps what
		// arrived, a plain one stores nothing.
		return nil, false, fmt.Errorf("upload source changed while uploading: read %d bytes, expected %d", n, want)
	}
	if end != nil {
		// An error here returns before the trailer, which cancels the
		// stream: nothing is stored.
		last, err := end()
		if err != nil {
			return nil, false, err
		}
		if err := stream.Send(last); err != nil {
			return nil, false, uploadErr(stream, err)
		}
	}
	resp, err = stream.CloseAndRecv()
	return resp, true, err
}

// uploadErr returns the RPC's status after a failed Send: Send reports only
// io.EOF when the server ended the call, the reason comes from CloseAndRecv.
func uploadErr(stream grpc.ClientStreamingClient[pb.UploadFileRequest, pb.StringResponse], err error) error {
	if errors.Is(err, io.EOF) {
		_, err = stream.CloseAndRecv()
		if err == nil {
			err = status.Error(codes.Internal, "server ended the upload early without an error")
		}
	}
	return err
}

// trailerFrom returns the end of a stream that declares the SHA-256 h
// computed over the *size bytes sent.
func trailerFrom(h hash.Hash, size *int64) func() (*pb.UploadFileRequest, error) {
	return func() (*pb.UploadFileRequest, error) { return trailerOf(hex.EncodeToString(h.Sum(nil)), *size), nil }
}

// checkStored compares what the server says it stored with what was sent.
func checkStored(resp *pb.StringResponse, size int64, sum string) error {
	if resp.GetSha256() != sum || resp.GetSize() != size {
		return status.Errorf(codes.DataLoss, "server stored %d bytes with sha256 %s, sent %d bytes with sha256 %s", resp.GetSize(), resp.GetSha256(), size, sum)
	}
	return nil
}

// UploadFile stores the file at path under name, retrying transient
// failures as the transfer's RetryPolicy says.
//
// It asks the server (QueryUpload) how much of the upload UploadID names
// it already holds, hashes that much of the file locally, and sends the
// rest while hashing it: the file is read once, and the SHA-256 of the
// whole file goes last, in the stream's trailer, where the server checks
// the file against it before storing it. After a failure it continues from
// what the server committed. A server whose storage wants the SHA-256 up
// front (or that predates the trailer) gets it so: then the file is read
// once more to hash it first. With NoResume, or against a server that
// cannot resume uploads, every attempt sends the whole file as a plain
// upload, its SHA-256 in the trailer.
//
// If an attempt sent every byte but lost the server's answer, and the
// server no longer knows the upload, UploadFile asks StatFile whether the
// file is stored with this size and SHA-256 before starting over.
//
// CreateOnly and IfMatch make the upload conditional; every attempt sends
// the condition, and the server checks it.
func (c *Client) UploadFile(ctx context.Context, path, name string, progress Progress, opts ...TransferOption) (Result, error) {
	t := c.transferOptions(opts)
	res := Result{Name: name}
	f, err := os.Open(path)
	if err != nil {
		return res, err
	}
	defer f.Close()
	return c.uploadFrom(ctx, f, name, progress, t)
}

// uploadSource is the file UploadFile sends: an *os.File, or in tests a
// wrapper that counts what is read.
type uploadSource interface {
	io.ReaderAt
	Stat() (fs.FileInfo, error)
}

// uploadFrom is UploadFile once the file is open.
func (c *Client) uploadFrom(ctx context.Context, f uploadSource, name string, progress Progress, t transfer) (Result, error) {
	res := Result{Name: name}
	st, err := f.Stat()
	if err != nil {
		return res, err
	}
	if !st.Mode().IsRegular() {
		return res, fmt.Errorf("%s is not a regular file", st.Name())
	}
	u := &fileUpload{c: c, f: f, name: name, t: t, size: st.Size(), stat: st, res: &res, progress: progress, furthest: -1, committed: -1}
	if !t.noResume {
		u.id, u.h = UploadID(name, st), newRunningHash()
	}
	res.Attempts, err = c.retry(ctx, t.retry, u.attempt)
	if err != nil {
		return res, err
	}
	res.Size, res.SHA256 = u.size, u.sha256
	return res, nil
}

// fileUpload is the state one UploadFile keeps across its attempts.
type fileUpload struct {
	c      *Client
	f      uploadSource
	name   string
	t      transfer // for the preconditions
	size   int64
	sha256 string // the file's, once known: hashed whole or sent whole
	id     string // empty for a plain upload
	// stat is what the file looked like when the upload began (and id
	// was derived from it).
	stat fs.FileInfo
	// h hashes the file as it is sent; nil for a plain upload.
	h *runningHash
	// digestFirst is set when the server wants the SHA-256 up front: the
	// file was hashed whole before sending.
	digestFirst bool
	res         *Result
	progress    Progress
	// furthest is the largest committed size the server reported, or for
	// a plain upload the most bytes an attempt sent.
	furthest int64
	// committed is the committed size the server reported with the last
	// failure, or -1 when QueryUpload must tell.
	committed int64
	// sentAll is set once an attempt sent every byte.
	sentAll bool
}

func (u *fileUpload) report(n int64) {
	if u.progress != nil {
		u.progress(n, u.size)
	}
}

// reached records that the upload got to position pos and calls
// progressed if that is further than ever before.
func (u *fileUpload) reached(pos int64, progressed func()) {
	if pos > u.furthest {
		u.furthest = pos
		progressed()
	}
}

// attempt runs one attempt: resumable when the upload has an ID, plain
// otherwise.
func (u *fileUpload) attempt(ctx context.Context, progressed func()) (verdict, error) {
	if u.id == "" {
		return u.plain(ctx, progressed)
	}
	offset := u.committed
	u.committed = -1
	if offset < 0 {
		qctx, cancel := u.c.withCallTimeout(ctx)
		st, err := u.c.rpc.QueryUpload(qctx, &pb.QueryUploadRequest{UploadId: u.id})
		cancel()
		switch status.Code(err) {
		case codes.OK:
			offset = st.GetCommittedSize()
		case codes.NotFound:
			offset = 0
			if u.sentAll && u.alreadyStored(ctx) {
				return verdict{}, nil
			}
		case codes.Unimplemented:
			return u.fallBack(ctx, progressed)
		default:
			return classify(err), err
		}
	}
	if offset > u.size {
		return verdict{}, status.Errorf(codes.Internal, "server committed %d bytes of a %d-byte upload", offset, u.size)
	}
	if err := u.unchanged(); err != nil {
		return verdict{}, err
	}
	u.reached(offset, progressed)
	u.report(offset)
	md := u.t.metadata(u.name)
	md.Size, md.UploadId, md.Offset = &u.size, u.id, offset
	var h io.Writer
	var end func() (*pb.UploadFileRequest, error)
	if u.digestFirst {
		md.Sha256 = u.sha256
	} else {
		// Hash what the server holds, then what is sent.
		if err := u.h.seek(ctx, u.f, offset); err != nil {
			return verdict{}, err
		}
		u.h.forget(offset)
		h, end = u.h, func() (*pb.UploadFileRequest, error) {
			// Bytes sent while the file was rewritten must not be
			// committed as one file: check before declaring the digest.
			if err := u.unchanged(); err != nil {
				return nil, err
			}
			return trailerOf(u.h.sum(), u.size), nil
		}
	}
	var sent int64
	resp, reachedEnd, err := u.c.send(ctx, md, io.NewSectionReader(u.f, offset, u.size-offset), u.size-offset, h, &sent, end,
		func(n int64) { u.report(offset + n) })
	u.res.Sent += sent
	if reachedEnd && !u.digestFirst {
		u.sha256 = u.h.sum()
	}
	u.sentAll = u.sentAll || reachedEnd
	if status.Code(err) == codes.Unimplemented && offset == 0 {
		return u.fallBack(ctx, progressed)
	}
	if !u.digestFirst && digestRequired(err) {
		return u.hashFirst(ctx, progressed)
	}
	if err != nil {
		v := classify(err)
		u.committed = v.committed
		return v, err
	}
	return verdict{}, checkStored(resp, u.size, u.sha256)
}

// unchanged checks that the file still looks as it did when the upload
// began (size, modification time, inode: what UploadID is derived from):
// bytes of another version must not continue the upload. A rewrite that
// keeps all three (within the file system's mtime granularity) goes
// unseen, as it does for cp.
func (u *fileUpload) unchanged() error {
	st, err := u.f.Stat()
	if err != nil {
		return err
	}
	if UploadID(u.name, st) != UploadID(u.name, u.stat) {
		return fmt.Errorf("%s changed while uploading (size, modification time or inode); upload it again", st.Name())
	}
	return nil
}

// hashFirst hashes the whole file and runs the attempt again with the
// SHA-256 up front, for a server that wants it there. It asks QueryUpload
// again: hashing takes a while, and another stream (a run that began the
// upload with the digest) may have moved the committed size meanwhile.
func (u *fileUpload) hashFirst(ctx context.Context, progressed func()) (verdict, error) {
	sum, err := hashFile(ctx, u.f, u.size)
	if err != nil {
		return verdict{}, err
	}
	u.sha256, u.digestFirst, u.committed = sum, true, -1
	return u.attempt(ctx, progressed)
}

// fallBack turns the upload into a plain one, for a server that cannot
// resume uploads, and runs its first attempt.
func (u *fileUpload) fallBack(ctx context.Context, progressed func()) (verdict, error) {
	u.id, u.sha256, u.furthest, u.h = "", "", -1, nil
	return u.plain(ctx, progressed)
}

// plain sends the whole file without an upload ID. Nothing it sends
// survives a failure, so it never counts as progress.
func (u *fileUpload) plain(ctx context.Context, _ func()) (verdict, error) {
	u.report(0)
	h := sha256.New()
	var sent int64
	md := u.t.metadata(u.name)
	md.Size = &u.size
	trailer := trailerFrom(h, &sent)
	end := func() (*pb.UploadFileRequest, error) {
		if err := u.unchanged(); err != nil {
			return nil, err
		}
		return trailer()
	}
	resp, _, err := u.c.send(ctx, md, io.NewSectionReader(u.f, 0, u.size), u.size, h, &sent, end, u.report)
	u.res.Sent += sent
	if err != nil {
		return classify(err), err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if err := checkStored(resp, u.size, sum); err != nil {
		return verdict{}, err
	}
	u.sha256 = sum
	return verdict{}, nil
}

// alreadyStored reports whether the server holds the file under its name
// with this upload's size and SHA-256: what an upload whose final answer
// was lost leaves behind.
func (u *fileUpload) alreadyStored(ctx context.Context) bool {
	ctx, cancel := u.c.withCallTimeout(ctx)
	defer cancel()
	info, err := u.c.rpc.StatFile(ctx, &pb.MetaData{Filename: u.name})
	return err == nil && info.GetSize() == u.size && info.GetSha256() == u.sha256
}

// hashFile returns the hex SHA-256 of the first size bytes of r, which must
// hold that many.
func hashFile(ctx context.Context, r io.ReaderAt, size int64) (string, error) {
	h := sha256.New()
	n, err := copyContext(ctx, h, io.NewSectionReader(r, 0, size))
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("file changed while hashing: read %d bytes, expected %d", n, size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
