package client

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
)

// UploadID returns the upload ID UploadFile uses for a file: the first 32
// hex digits of SHA-256(name NUL size NUL sha256). It is the same in every
// process, so a later run uploading the same bytes under the same name
// resumes where an earlier one stopped, and it changes when the file does.
func UploadID(name string, size int64, sha256Hex string) string {
	sum := sha256.Sum256([]byte(name + "\x00" + strconv.FormatInt(size, 10) + "\x00" + sha256Hex))
	return hex.EncodeToString(sum[:])[:32]
}

// Upload stores the bytes of r under name in one attempt: a reader cannot
// be rewound, so nothing is retried or resumed (UploadFile does both).
// size, when not negative, is declared to the server, which then refuses
// anything else. The SHA-256 the server reports is compared with the one
// computed while sending. Of opts, only the preconditions CreateOnly and
// IfMatch apply.
func (c *Client) Upload(ctx context.Context, name string, r io.Reader, size int64, progress Progress, opts ...TransferOption) (Result, error) {
	res := Result{Name: name, Attempts: 1}
	md := c.transferOptions(opts).metadata(name)
	if size >= 0 {
		md.Size = &size
	}
	h := sha256.New()
	resp, _, err := c.send(ctx, md, r, -1, h, &res.Sent, func(n int64) {
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

// send runs one UploadFile stream: md, then the bytes of r in chunks. When
// want is not negative, r must yield exactly want bytes. Every byte sent is
// also written to h (when not nil) and counted in *sent, and report is
// called with the bytes this stream sent so far. reachedEnd reports that
// every byte was sent and the stream half-closed, so a failure came while
// waiting for the server's answer.
func (c *Client) send(ctx context.Context, md *pb.MetaData, r io.Reader, want int64, h hash.Hash, sent *int64, report func(int64)) (resp *pb.StringResponse, reachedEnd bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.UploadFile(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := stream.Send(&pb.UploadFileRequest{Request: &pb.UploadFileRequest_Metadata{Metadata: md}}); err != nil {
		return nil, false, uploadErr(stream, err)
	}
	buf := make([]byte, c.chunk)
	chunk := &pb.UploadFileRequest_ChunkData{}
	msg := &pb.UploadFileRequest{Request: chunk}
	var n int64
	for {
		k, rerr := io.ReadFull(r, buf)
		if k > 0 {
			chunk.ChunkData = buf[:k]
			if err := stream.Send(msg); err != nil {
				return nil, false, uploadErr(stream, err)
			}
			if h != nil {
				h.Write(buf[:k])
			}
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
// It first reads the whole file for its size and SHA-256, then asks the
// server (QueryUpload) how much of the upload UploadID names it already
// holds, and sends the rest; after a failure it continues from what the
// server committed. With NoResume, or against a server that cannot resume
// uploads, every attempt sends the whole file as a plain upload.
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
	st, err := f.Stat()
	if err != nil {
		return res, err
	}
	if !st.Mode().IsRegular() {
		return res, fmt.Errorf("%s is not a regular file", path)
	}
	u := &fileUpload{c: c, f: f, name: name, t: t, size: st.Size(), res: &res, progress: progress, furthest: -1, committed: -1}
	if !t.noResume {
		sum, err := hashFile(ctx, f, u.size)
		if err != nil {
			return res, err
		}
		u.sha256, u.id = sum, UploadID(name, u.size, sum)
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
	c        *Client
	f        io.ReaderAt
	name     string
	t        transfer // for the preconditions
	size     int64
	sha256   string // empty for a plain upload until one succeeds
	id       string // empty for a plain upload
	res      *Result
	progress Progress
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
	u.reached(offset, progressed)
	u.report(offset)
	md := u.t.metadata(u.name)
	md.Size, md.Sha256, md.UploadId, md.Offset = &u.size, u.sha256, u.id, offset
	var sent int64
	resp, end, err := u.c.send(ctx, md, io.NewSectionReader(u.f, offset, u.size-offset), u.size-offset, nil, &sent,
		func(n int64) { u.report(offset + n) })
	u.res.Sent += sent
	u.sentAll = u.sentAll || end
	if status.Code(err) == codes.Unimplemented && offset == 0 {
		return u.fallBack(ctx, progressed)
	}
	if err != nil {
		v := classify(err)
		u.committed = v.committed
		return v, err
	}
	return verdict{}, checkStored(resp, u.size, u.sha256)
}

// fallBack turns the upload into a plain one, for a server that cannot
// resume uploads, and runs its first attempt.
func (u *fileUpload) fallBack(ctx context.Context, progressed func()) (verdict, error) {
	u.id, u.sha256, u.furthest = "", "", -1
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
	resp, _, err := u.c.send(ctx, md, io.NewSectionReader(u.f, 0, u.size), u.size, h, &sent, u.report)
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
