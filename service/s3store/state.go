package s3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/service/objname"
)

// A resumable upload's state is the object
// <prefix>uploads/<owner>/<id>.json, holding uploadState in JSON at
// stateVersion.
const (
	stateSuffix  = ".json"
	stateVersion = 1
	// maxStateSize bounds how much of a state object is read: a part is
	// about 60 bytes of JSON, and an upload has at most maxParts.
	maxStateSize = 1 << 20
)

var (
	// errNoState means an upload has no state object.
	errNoState = errors.New("s3store: no upload state")
	// errBadState means a state object cannot be used.
	errBadState = errors.New("s3store: unusable upload state")
	// errStateMoved means a conditional write of a state object failed:
	// another writer changed or deleted it since it was read.
	errStateMoved = errors.New("s3store: upload state changed by another writer")
)

// uploadState is the content of a state object: everything needed to
// resume or complete the upload, on any replica.
type uploadState struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	SHA256  string `json:"sha256"`
	// S3UploadID is the multipart upload on the file's key.
	S3UploadID string `json:"s3_upload_id"`
	// Nonce is random, and the multipart upload carries it as metadata:
	// the file's object shows it once the upload completed (see
	// completedAs). States written before it existed have none.
	Nonce string `json:"nonce,omitempty"`
	// PartSize is the size of every part but the last.
	PartSize int64 `json:"part_size"`
	// Committed is the bytes the parts hold: len(Parts) * PartSize.
	Committed int64 `json:"committed"`
	// Parts are the uploaded parts, in the order of the file.
	Parts []statePart `json:"parts"`
	// NextPart is the part number the writer uses for the next part.
	NextPart int `json:"next_part"`
	// Hash is the marshalled SHA-256 state after the first Committed
	// bytes.
	Hash []byte `json:"hash"`
	// Writer names the stream that holds the upload; "" when it was
	// released by Suspend.
	Writer  string    `json:"writer,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// statePart is one uploaded part.
type statePart struct {
	Number int    `json:"n"`
	ETag   string `json:"etag"`
}

// sum returns the declared SHA-256.
func (st *uploadState) sum() (sum [32]byte) {
	hex.Decode(sum[:], []byte(st.SHA256))
	return sum
}

// expired reports whether the upload was last written more than ttl before
// now. A ttl of zero or less never expires anything.
func (st *uploadState) expired(now time.Time, ttl time.Duration) bool {
	return ttl > 0 && now.Sub(st.Updated) > ttl
}

// completeParts returns the parts as CompleteMultipartUpload takes them.
func (st *uploadState) completeParts() []minio.CompletePart {
	parts := make([]minio.CompletePart, len(st.Parts))
	for i, p := range st.Parts {
		parts[i] = minio.CompletePart{PartNumber: p.Number, ETag: p.ETag}
	}
	return parts
}

// marshalHash returns the state of the SHA-256 hash h.
func marshalHash(h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("s3store: sha256 hash state cannot be saved")
	}
	return m.MarshalBinary()
}

// restoreHash returns a SHA-256 hash in the state st.Hash records.
func (st *uploadState) restoreHash() (hash.Hash, error) {
	h := sha256.New()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, errors.New("s3store: sha256 hash state cannot be restored")
	}
	if err := u.UnmarshalBinary(st.Hash); err != nil {
		return nil, err
	}
	return h, nil
}

// check validates a decoded state.
func (st *uploadState) check() error {
	_, sumOK := parseSHA256(st.SHA256)
	switch {
	case st.Version != stateVersion:
		return fmt.Errorf("%w: version %d", errBadState, st.Version)
	case objname.Validate(st.Name) != nil:
		return fmt.Errorf("%w: bad name", errBadState)
	case !sumOK:
		return fmt.Errorf("%w: bad sha256", errBadState)
	case st.S3UploadID == "":
		return fmt.Errorf("%w: no multipart upload", errBadState)
	case st.PartSize < MinPartSize || st.PartSize > MaxPartSize:
		return fmt.Errorf("%w: part size %d", errBadState, st.PartSize)
	case st.Size < 0 || st.Committed != int64(len(st.Parts))*st.PartSize || st.Committed > st.Size:
		return fmt.Errorf("%w: %d parts, committed %d of %d bytes", errBadState, len(st.Parts), st.Committed, st.Size)
	}
	last := 0
	for _, p := range st.Parts {
		if p.Number <= last || p.ETag == "" {
			return fmt.Errorf("%w: bad part list", errBadState)
		}
		last = p.Number
	}
	if st.NextPart <= last || st.NextPart > maxParts {
		return fmt.Errorf("%w: next part %d", errBadState, st.NextPart)
	}
	if _, err := st.restoreHash(); err != nil {
		return fmt.Errorf("%w: bad hash state: %w", errBadState, err)
	}
	return nil
}

// loadState reads and checks the state object key and returns it with
// its ETag. It returns errNoState if there is none, and an error wrapping
// errBadState, with the ETag, if it is unusable.
func (s *Store) loadState(ctx context.Context, key string) (*uploadState, string, error) {
	body, obj, _, err := s.c.GetObject(ctx, s.opts.Bucket, key, minio.GetObjectOptions{})
	if isNotFound(err) {
		return nil, "", errNoState
	}
	if err != nil {
		return nil, "", err
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxStateSize+1))
	if err != nil {
		return nil, "", err
	}
	if len(b) > maxStateSize {
		return nil, obj.ETag, fmt.Errorf("%w: state object too large", errBadState)
	}
	st := new(uploadState)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, obj.ETag, fmt.Errorf("%w: %w", errBadState, err)
	}
	if err := st.check(); err != nil {
		return nil, obj.ETag, err
	}
	return st, obj.ETag, nil
}

// saveState writes st to the state object key if its ETag is still etag,
// or, with etag "", if there is no state object, and returns the new
// ETag. It returns errStateMoved if the condition fails: then another
// writer moved the upload on, and this one must stop.
func (s *Store) saveState(ctx context.Context, key string, st *uploadState, etag string) (string, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	opts := minio.PutObjectOptions{ContentType: "application/json"}
	if etag == "" {
		opts.SetMatchETagExcept("*")
	} else {
		opts.SetMatchETag(etag)
	}
	res, err := s.c.PutObject(ctx, s.opts.Bucket, key, bytes.NewReader(b), int64(len(b)), "", "", opts)
	if isPreconditionFailed(err) || (etag != "" && isNotFound(err)) {
		return "", errStateMoved
	}
	if err != nil {
		return "", err
	}
	return res.ETag, nil
}
