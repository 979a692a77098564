package diskstore

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/greeter/greeter/service"
)

func TestResumableSuspendResumeCommit(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	data := randomData(t, 300<<10)

	up, err := s.BeginResumable(ctx, owner, resumeOf("u1", "dir/file.bin", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	wantCommitted(t, s, owner, "u1", 0)
	writeAll(t, up, data[:100<<10], 10<<10)
	if err := up.Suspend(); err != nil {
		t.Fatal(err)
	}
	if err := up.Suspend(); err != nil {
		t.Errorf("second Suspend = %v, want nil", err)
	}
	if _, err := up.Write([]byte("x")); err == nil {
		t.Error("Write after Suspend = nil, want an error")
	}
	wantCommitted(t, s, owner, "u1", 100<<10)
	assertAbsent(t, dir, owner, "dir/file.bin")

	// Bytes past the committed size (a crash after writing them) are
	// dropped on resume: the part file is truncated.
	part := filepath.Join(dir, uploadsDir, encodedOwner(owner), "u1"+partSuffix)
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(randomData(t, 250<<10)) // longer than what remains to be sent
	f.Close()

	up, err = s.BeginResumable(ctx, owner, resumeOf("u1", "dir/file.bin", data, 100<<10))
	if err != nil {
		t.Fatal(err)
	}
	if got := up.Written(); got != 100<<10 {
		t.Errorf("Written after resume = %d, want %d", got, 100<<10)
	}
	writeAll(t, up, data[100<<10:], 64<<10)
	info, err := up.Commit(ctx, resumeOf("u1", "dir/file.bin", data, 0).Want)
	if err != nil {
		t.Fatal(err)
	}
	if info.Size != int64(len(data)) || info.SHA256 != sha256.Sum256(data) {
		t.Errorf("Commit = %d bytes, %x; want %d bytes, %x", info.Size, info.SHA256, len(data), sha256.Sum256(data))
	}
	got, err := os.ReadFile(diskPath(dir, owner, "dir/file.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("committed file: %d bytes, %v; want the %d uploaded bytes", len(got), err, len(data))
	}
	fi, err := s.Stat(ctx, owner, "dir/file.bin")
	if err != nil || fi.SHA256 != sha256.Sum256(data) {
		t.Errorf("Stat = %x, %v, want the upload's digest", fi.SHA256, err)
	}
	wantUnknown(t, s, owner, "u1", 0)
	if left := uploadFiles(t, dir); len(left) != 0 {
		t.Errorf("files left below uploads/: %v", left)
	}
	if err := up.Suspend(); err != nil {
		t.Errorf("Suspend after Commit = %v, want nil", err)
	}
	if err := up.Abort(); err != nil {
		t.Errorf("Abort after Commit = %v, want nil", err)
	}
	if _, err := s.Stat(ctx, owner, "dir/file.bin"); err != nil {
		t.Errorf("Stat after Abort following Commit = %v, want the file kept", err)
	}
}

// TestResumableSurvivesCrash writes past two checkpoints and then abandons
// the store without suspending, as a killed process would: a new store on
// the same directory resumes from the last checkpoint.
func TestResumableSurvivesCrash(t *testing.T) {
	const interval = 64 << 10
	s, dir := newStore(t, WithCheckpointInterval(interval))
	ctx := t.Context()
	data := randomData(t, 400<<10)
	up, err := s.BeginResumable(ctx, owner, resumeOf("crash", "f", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, up, data[:200<<10], 10<<10)
	// Checkpoints happen once 64 KiB are uncommitted: at 70, 140 KiB.
	const want = 140 << 10
	wantCommitted(t, s, owner, "crash", want)
	up.(*resumable).f.Close() // the process dies; nothing else runs
	s.Close()                 // and the kernel releases its lock

	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	wantCommitted(t, s2, owner, "crash", want)
	up2, err := s2.BeginResumable(ctx, owner, resumeOf("crash", "f", data, want))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, up2, data[want:], 32<<10)
	if _, err := up2.Commit(ctx, service.Expect{}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(diskPath(dir, owner, "f"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("committed file: %d bytes, %v; want the %d uploaded bytes", len(got), err, len(data))
	}
}

func TestBeginResumableErrors(t *testing.T) {
	s, _ := newStore(t)
	ctx := t.Context()
	data := randomData(t, 1000)
	up, err := s.BeginResumable(ctx, owner, resumeOf("held", "f", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, up, data[:100], 100)
	// "held" stays held; "idle" is suspended at 100 bytes.
	idle, err := s.BeginResumable(ctx, owner, resumeOf("idle", "f", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, idle, data[:100], 50)
	if err := idle.Suspend(); err != nil {
		t.Fatal(err)
	}
	defer up.Abort()

	other := randomData(t, 1000)
	noSize := resumeOf("new", "f", data, 0)
	noSize.Want.HasSize = false
	// An upload begun with a digest is resumed with the same one; a new
	// upload may leave it to Commit.
	noDigest := resumeOf("idle", "f", data, 100)
	noDigest.Want.HasSHA256 = false
	for _, c := range []struct {
		name      string
		owner     string
		r         service.Resume
		want      error
		committed int64
	}{
		{"busy", owner, resumeOf("held", "f", data, 100), service.ErrUploadBusy, 0},
		{"wrong offset", owner, resumeOf("idle", "f", data, 50), service.ErrOffsetMismatch, 100},
		{"offset past the end", owner, resumeOf("idle", "f", data, 5000), service.ErrOffsetMismatch, 100},
		{"negative offset", owner, resumeOf("idle", "f", data, -1), service.ErrOffsetMismatch, 100},
		{"new upload with an offset", owner, resumeOf("new", "f", data, 10), service.ErrOffsetMismatch, 0},
		{"other owner's upload", "bob", resumeOf("idle", "f", data, 100), service.ErrOffsetMismatch, 0},
		{"other name", owner, resumeOf("idle", "g", data, 100), service.ErrUploadMismatch, 0},
		{"other size", owner, resumeOf("idle", "f", data[:999], 100), service.ErrUploadMismatch, 0},
		{"other digest", owner, resumeOf("idle", "f", other, 100), service.ErrUploadMismatch, 0},
		{"invalid id", owner, resumeOf("a/b", "f", data, 0), service.ErrInvalidUploadID, 0},
		{"id too long", owner, resumeOf(strings.Repeat("a", 129), "f", data, 0), service.ErrInvalidUploadID, 0},
		{"invalid owner", "", resumeOf("new", "f", data, 0), service.ErrInvalidOwner, 0},
		{"no size", owner, noSize, nil, 0},
		{"no digest on resume", owner, noDigest, service.ErrUploadMismatch, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			up, err := s.BeginResumable(ctx, c.owner, c.r)
			if err == nil {
				up.Abort()
				t.Fatal("BeginResumable = nil error, want one")
			}
			if c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("BeginResumable = %v, want %v", err, c.want)
			}
			var upErr *service.UploadError
			if errors.Is(c.want, service.ErrOffsetMismatch) && (!errors.As(err, &upErr) || upErr.Committed != c.committed) {
				t.Fatalf("BeginResumable = %#v, want an UploadError with committed size %d", err, c.committed)
			}
		})
	}
	// Nothing above changed the uploads.
	wantCommitted(t, s, owner, "idle", 100)
	wantUnknown(t, s, owner, "new", 0)
	wantUnknown(t, s, "bob", "idle", 0)
}

func TestResumableVerificationFailuresDiscard(t *testing.T) {
	data := randomData(t, 1000)
	for _, c := range []struct {
		name  string
		bytes []byte
		want  error
	}{
		{"digest mismatch", randomData(t, 1000), service.ErrDigestMismatch},
		{"too long", append(bytes.Clone(data), 'x'), service.ErrSizeMismatch},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, dir := newStore(t)
			up, err := s.BeginResumable(t.Context(), owner, resumeOf("v", "f", data, 0))
			if err != nil {
				t.Fatal(err)
			}
			writeAll(t, up, c.bytes, 300)
			if _, err := up.Commit(t.Context(), service.Expect{}); !errors.Is(err, c.want) {
				t.Fatalf("Commit = %v, want %v", err, c.want)
			}
			assertAbsent(t, dir, owner, "f")
			wantUnknown(t, s, owner, "v", 0)
			if left := uploadFiles(t, dir); len(left) != 0 {
				t.Errorf("files left below uploads/: %v", left)
			}
		})
	}
}

func TestResumableShortCommitSuspends(t *testing.T) {
	s, dir := newStore(t)
	data := randomData(t, 1000)
	up, err := s.BeginResumable(t.Context(), owner, resumeOf("short", "f", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, up, data[:600], 200)
	if _, err := up.Commit(t.Context(), service.Expect{}); !errors.Is(err, service.ErrSizeMismatch) {
		t.Fatalf("Commit of 600 of 1000 bytes = %v, want ErrSizeMismatch", err)
	}
	assertAbsent(t, dir, owner, "f")
	wantCommitted(t, s, owner, "short", 600)
}

func TestResumableWriteErrorKeepsCommitted(t *testing.T) {
	var fail sync.Mutex // held: writes fail
	s, _ := newStore(t, WithCheckpointInterval(100))
	s.opts.writeFile = func(f *os.File, p []byte) (int, error) {
		if !fail.TryLock() {
			return 0, syscall.ENOSPC
		}
		defer fail.Unlock()
		return f.Write(p)
	}
	data := randomData(t, 1000)
	up, err := s.BeginResumable(t.Context(), owner, resumeOf("w", "f", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, up, data[:250], 50) // checkpoints at 100 and 200
	fail.Lock()
	if _, err := up.Write(data[250:300]); !errors.Is(err, service.ErrNoSpace) {
		t.Fatalf("Write on a full disk = %v, want ErrNoSpace", err)
	}
	fail.Unlock()
	if _, err := up.Write(data[250:300]); !errors.Is(err, service.ErrNoSpace) {
		t.Fatalf("Write after a failed write = %v, want the same error", err)
	}
	if err := up.Suspend(); err != nil {
		t.Fatal(err)
	}
	// The 50 bytes after the last checkpoint were never saved.
	wantCommitted(t, s, owner, "w", 200)
	up, err = s.BeginResumable(t.Context(), owner, resumeOf("w", "f", data, 200))
	if err != nil {
		t.Fatal(err)
	}
	writeAll(t, up, data[200:], 100)
	if _, err := up.Commit(t.Context(), service.Expect{}); err != nil {
		t.Fatal(err)
	}
}

func TestResumableNeverVisible(t *testing.T) {
	s, dir := newStore(t)
	ctx := t.Context()
	data := randomData(t, 1000)
	up, err := s.BeginResumable(ctx, owner, resumeOf("p", "part.bin", data, 0))
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if _, err := s.Stat(ctx, owner, "part.bin"); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("%s: Stat = %v, want ErrNotFound", when, err)
		}
		if _, err := s.Open(ctx, owner, "part.bin"); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("%s: Open = %v, want ErrNotFound", when, err)
		}
		if err := s.Delete(ctx, owner, "part.bin"); !errors.Is(err, service.ErrNotFound) {
			t.Errorf("%s: Delete = %v, want ErrNotFound", when, err)
		}
		if files, err := s.List(ctx, owner, "", "", 10); err != nil || len(files) != 0 {
			t.Errorf("%s: List = %v, %v, want nothing", when, files, err)
		}
		assertAbsent(t, dir, owner, "part.bin")
	}
	writeAll(t, up, data[:500], 100)
	check("while writing")
	up.Suspend()
	check("suspended")
}

func TestResumableCap(t *testing.T) {
	clock := newFakeClock()
	s, _ := newStore(t, WithMaxUploadsPerOwner(2), WithClock(clock.Now))
	ctx := t.Context()
	data := randomData(t, 100)
	begin := func(owner, id string, ttl time.Duration) error {
		r := resumeOf(id, "f", data, 0)
		r.TTL = ttl
		up, err := s.BeginResumable(ctx, owner, r)
		if err == nil {
			up.Suspend()
		}
		return err
	}
	for _, id := range []string{"a", "b"} {
		if err := begin(owner, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := begin(owner, "c", 0); !errors.Is(err, service.ErrTooManyUploads) {
		t.Fatalf("third upload = %v, want ErrTooManyUploads", err)
	}
	if err := begin("bob", "c", 0); err != nil {
		t.Fatalf("another owner's upload = %v, want nil", err)
	}
	if err := begin(owner, "a", 0); err != nil {
		t.Fatalf("resuming an upload at the cap = %v, want nil", err)
	}
	clock.Advance(2 * time.Hour)
	if err := begin(owner, "c", time.Hour); err != nil {
		t.Fatalf("upload after the others expired = %v, want nil", err)
	}
}
