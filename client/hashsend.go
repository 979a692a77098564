package client

import (
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"strconv"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
)

// UploadID returns the upload ID UploadFile uses for the file fi describes,
// stored as name: the first 32 hex digits of SHA-256 over name, size,
// modification time, device and inode. It is derived from what stat(2)
// tells, not from the file's digest, so that UploadFile can send the file
// while it hashes it (one read instead of two); and not from a random ID
// kept next to the file, which would need a writable folder and leave a
// file behind. It is the same in every process, so a later run uploading
// the same file under the same name resumes where an earlier one stopped,
// and it changes when the file is rewritten, replaced or touched (size,
// mtime or inode change), so bytes of an earlier version are never
// resumed; the SHA-256 the last stream declares in its trailer catches a
// change that keeps all three.
func UploadID(name string, fi fs.FileInfo) string {
	dev, ino := fileKey(fi)
	b := make([]byte, 0, len(name)+64)
	b = append(b, name...)
	for _, n := range []int64{fi.Size(), fi.ModTime().UnixNano(), int64(dev), int64(ino)} {
		b = append(b, 0)
		b = strconv.AppendInt(b, n, 10)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])[:32]
}

// hashMarkEvery is how far apart runningHash keeps hash states: resuming
// at a committed size below what was hashed re-reads at most this much.
const hashMarkEvery = 8 << 20

// runningHash is the SHA-256 of a file's first pos bytes, kept while the
// file is sent, with saved states every hashMarkEvery bytes so that it can
// go back to an earlier committed size (a store that keeps whole parts
// commits less than it received) without hashing from the start.
type runningHash struct {
	h     hash.Hash
	pos   int64
	marks []hashMark // ascending pos
}

type hashMark struct {
	pos   int64
	state []byte
}

func newRunningHash() *runningHash { return &runningHash{h: sha256.New()} }

// Write hashes p, the bytes of the file at pos.
func (r *runningHash) Write(p []byte) (int, error) {
	r.h.Write(p)
	r.pos += int64(len(p))
	last := int64(0)
	if n := len(r.marks); n > 0 {
		last = r.marks[n-1].pos
	}
	if r.pos-last >= hashMarkEvery {
		if state, err := r.h.(encoding.BinaryMarshaler).MarshalBinary(); err == nil {
			r.marks = append(r.marks, hashMark{pos: r.pos, state: state})
		}
	}
	return len(p), nil
}

// seek makes the hash cover the first off bytes of f: from the last state
// at or before off, it hashes the bytes up to off read from f.
func (r *runningHash) seek(ctx context.Context, f io.ReaderAt, off int64) error {
	if off < r.pos {
		r.h, r.pos = sha256.New(), 0
		for len(r.marks) > 0 && r.marks[len(r.marks)-1].pos > off {
			r.marks = r.marks[:len(r.marks)-1]
		}
		if n := len(r.marks); n > 0 {
			if err := r.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(r.marks[n-1].state); err != nil {
				return fmt.Errorf("restoring a hash state: %w", err)
			}
			r.pos = r.marks[n-1].pos
		}
	}
	if off == r.pos {
		return nil
	}
	if _, err := copyContext(ctx, r, io.NewSectionReader(f, r.pos, off-r.pos)); err != nil {
		return err
	}
	if r.pos != off {
		return fmt.Errorf("file changed while uploading: %d bytes where %d were before", r.pos, off)
	}
	return nil
}

// forget drops the saved states that no committed size at or past below
// can need.
func (r *runningHash) forget(below int64) {
	i := 0
	for i+1 < len(r.marks) && r.marks[i+1].pos <= below {
		i++
	}
	r.marks = r.marks[i:]
}

// sum returns the hex SHA-256 of the bytes hashed so far.
func (r *runningHash) sum() string { return hex.EncodeToString(r.h.Sum(nil)) }

// trailerOf returns the UploadTrailer declaring the hex SHA-256 sum of a
// file of size bytes.
func trailerOf(sum string, size int64) *pb.UploadFileRequest {
	return &pb.UploadFileRequest{Request: &pb.UploadFileRequest_Trailer{Trailer: &pb.UploadTrailer{Sha256: sum, Size: &size}}}
}

// digestRequired reports whether err says that the server wants the
// SHA-256 of a resumable upload up front: its storage cannot take it at
// the end (ErrorInfo DIGEST_REQUIRED), or it predates the upload trailer
// (it answers with this message and no ErrorInfo; matching the text is the
// only way to recognise it).
func digestRequired(err error) bool {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return false
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == wire.ErrorDomain && info.GetReason() == wire.ReasonDigestRequired {
			return true
		}
	}
	return st.Message() == "resumable uploads must declare size and sha256"
}
