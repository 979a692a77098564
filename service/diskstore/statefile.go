package diskstore

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"time"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/objname"
)

// A resumable upload's state lives in uploads/<owner>/<id>.json, written
// through <id>.json.tmp. Its format is uploadState in JSON, at
// stateVersion.
const (
	stateSuffix    = ".json"
	stateTmpSuffix = ".json.tmp"
	stateVersion   = 1
	// maxStateSize bounds how much of a state file is read; real ones are
	// a few hundred bytes.
	maxStateSize = 16 << 10
)

// errBadState means a state file cannot be used: it is malformed, or its
// part file is missing or shorter than the committed size.
var errBadState = errors.New("diskstore: unusable upload state")

// uploadState is the content of a state file.
type uploadState struct {
	Version int    `json:"version"`
	Name    string `json:"name"`
	Size    int64  `json:"size"`
	// SHA256 is the declared SHA-256 in hex, or "" when the upload was
	// begun without one: its Commit then brings it.
	SHA256    string `json:"sha256"`
	Committed int64  `json:"committed"`
	// Hash is the marshalled SHA-256 state after the first Committed
	// bytes.
	Hash []byte `json:"hash"`
	// File is the part file's identity (see fileIdentity), which the file
	// keeps when a commit renames it: it shows that the upload completed.
	// Empty in states written before it existed.
	File    string    `json:"file,omitempty"`
	Created time.Time `json:"created"`
	Updated time.Time `json:"updated"`
}

// declared returns what the upload was begun with: its size, and its
// SHA-256 unless it was begun without one.
func (st *uploadState) declared() service.Expect {
	want := service.Expect{Size: st.Size, HasSize: true}
	if st.SHA256 != "" {
		hex.Decode(want.SHA256[:], []byte(st.SHA256))
		want.HasSHA256 = true
	}
	return want
}

// declaredSum returns the SHA-256 want declares in hex, as
// uploadState.SHA256 records it: "" when it declares none.
func declaredSum(want service.Expect) string {
	if !want.HasSHA256 {
		return ""
	}
	return hex.EncodeToString(want.SHA256[:])
}

// expired reports whether the upload was last written more than ttl before
// now. A ttl of zero or less never expires anything.
func (st *uploadState) expired(now time.Time, ttl time.Duration) bool {
	return ttl > 0 && now.Sub(st.Updated) > ttl
}

// marshalHash returns the state of the SHA-256 hash h, as
// uploadState.Hash records it.
func marshalHash(h hash.Hash) ([]byte, error) {
	m, ok := h.(encoding.BinaryMarshaler)
	if !ok {
		return nil, errors.New("diskstore: sha256 hash state cannot be saved")
	}
	return m.MarshalBinary()
}

// restoreHash returns a SHA-256 hash in the state st.Hash records.
func (st *uploadState) restoreHash() (hash.Hash, error) {
	h := sha256.New()
	u, ok := h.(encoding.BinaryUnmarshaler)
	if !ok {
		return nil, errors.New("diskstore: sha256 hash state cannot be restored")
	}
	if err := u.UnmarshalBinary(st.Hash); err != nil {
		return nil, err
	}
	return h, nil
}

// check validates a decoded state.
func (st *uploadState) check() error {
	var sum [32]byte
	switch {
	case st.Version != stateVersion:
		return fmt.Errorf("%w: version %d", errBadState, st.Version)
	case objname.Validate(st.Name) != nil:
		return fmt.Errorf("%w: bad name", errBadState)
	case st.Size < 0 || st.Committed < 0 || st.Committed > st.Size:
		return fmt.Errorf("%w: committed %d of %d bytes", errBadState, st.Committed, st.Size)
	case st.SHA256 == "":
		// Begun without a sha256.
	case len(st.SHA256) != hex.EncodedLen(len(sum)):
		return fmt.Errorf("%w: bad sha256", errBadState)
	default:
		if _, err := hex.Decode(sum[:], []byte(st.SHA256)); err != nil {
			return fmt.Errorf("%w: bad sha256", errBadState)
		}
	}
	if _, err := st.restoreHash(); err != nil {
		return fmt.Errorf("%w: bad hash state: %w", errBadState, err)
	}
	return nil
}

// loadState reads and checks the state of the upload at key. It returns an
// error satisfying isMissing if there is none, and one wrapping errBadState
// if it is unusable.
func (s *Store) loadState(key string) (*uploadState, error) {
	st, err := s.readState(key)
	if err != nil {
		return nil, err
	}
	fi, err := s.root.Lstat(key + partSuffix)
	if isMissing(err) || (err == nil && (!fi.Mode().IsRegular() || fi.Size() < st.Committed)) {
		return nil, fmt.Errorf("%w: part file missing or short", errBadState)
	}
	if err != nil {
		return nil, err
	}
	return st, nil
}

// readState reads and checks the state file of the upload at key, whatever
// its part file is.
func (s *Store) readState(key string) (*uploadState, error) {
	f, err := s.root.Open(key + stateSuffix)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateSize {
		return nil, fmt.Errorf("%w: state file too large", errBadState)
	}
	st := new(uploadState)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%w: %w", errBadState, err)
	}
	if err := st.check(); err != nil {
		return nil, err
	}
	return st, nil
}

// saveState replaces the state of the upload at key atomically and
// durably: it writes a temporary file, syncs it, renames it over the state
// and syncs the folder.
func (s *Store) saveState(key string, st *uploadState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := key + stateTmpSuffix
	f, err := s.root.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, tmpMode)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.root.Rename(tmp, key+stateSuffix)
	}
	if err != nil {
		s.root.Remove(tmp)
		return err
	}
	return s.syncDir(path.Dir(key))
}
