package diskstore

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// typedKey is the mapping greeterd supplies for a token-only server.
func typedKey(owner string) string { return "jwt:greeterd:" + owner }

// legacyDir builds a layout-1 data directory by hand, as the store before
// typed identities wrote it: owner folders are the owner in base64url, a
// committed file, and a resumable upload (part file and state) with the
// first half of upload received.
type legacyDir struct {
	dir    string
	file   []byte // objects/<owner>/docs/a.txt
	upload []byte // the whole resumable upload "up1" of big.bin
}

const legacyHalf = 4096

func newLegacyDir(t *testing.T, owners ...string) *legacyDir {
	t.Helper()
	l := &legacyDir{dir: t.TempDir(), file: []byte("old layout file\n"), upload: randomData(t, 2*legacyHalf)}
	for _, o := range owners {
		l.addOwner(t, o)
	}
	return l
}

// addOwner writes owner's committed file and incomplete upload.
func (l *legacyDir) addOwner(t *testing.T, owner string) {
	t.Helper()
	folder := legacyOwnerEncoding.EncodeToString([]byte(owner))
	obj := filepath.Join(l.dir, objectsDir, folder, "docs")
	up := filepath.Join(l.dir, uploadsDir, folder)
	for _, d := range []string{obj, up, filepath.Join(l.dir, tmpDir)} {
		if err := os.MkdirAll(d, dirMode); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, filepath.Join(obj, "a.txt"), l.file)
	writeFile(t, filepath.Join(up, "up1"+partSuffix), l.upload[:legacyHalf])
	h := sha256.New()
	h.Write(l.upload[:legacyHalf])
	hashState, err := marshalHash(h)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	sum := sha256.Sum256(l.upload)
	state, err := json.Marshal(uploadState{
		Version: stateVersion, Name: "big.bin", Size: int64(len(l.upload)), SHA256: fmt.Sprintf("%x", sum),
		Committed: legacyHalf, Hash: hashState, Created: now, Updated: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(up, "up1"+stateSuffix), state)
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, tmpMode); err != nil {
		t.Fatal(err)
	}
}

// tree lists every path below dir with its size, for "nothing changed".
// The lock file is left out: every Open takes it, migration or not.
func tree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == lockName {
			return nil
		}
		size := fi.Size()
		if d.IsDir() {
			size = 0
		}
		fmt.Fprintf(&b, "%s %d\n", rel, size)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// openLogged opens dir with the mapping and returns the store and its log.
func openLogged(t *testing.T, dir string, opts ...Option) (*Store, *bytes.Buffer, error) {
	t.Helper()
	var logs bytes.Buffer
	opts = append(opts, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	s, err := Open(dir, opts...)
	if err == nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, &logs, err
}

// checkMigrated checks that owner's file and upload are the new key's.
func (l *legacyDir) checkMigrated(t *testing.T, s *Store, key string) {
	t.Helper()
	if got, _ := get(t, s, key, "docs/a.txt"); !bytes.Equal(got, l.file) {
		t.Errorf("%s: docs/a.txt after migration = %q, want %q", key, got, l.file)
	}
	wantCommitted(t, s, key, "up1", legacyHalf)
}

// TestMigrateLegacyLayout is R1 and R10: a data directory written before
// identities were typed keeps working. Each owner folder moves once to the
// case-safe folder of the owner's typed key, files and resumable uploads
// with it; a second Open changes nothing.
func TestMigrateLegacyLayout(t *testing.T) {
	l := newLegacyDir(t, "alice", "alOce")
	s, logs, err := openLogged(t, l.dir, WithOwnerMigration(typedKey))
	if err != nil {
		t.Fatalf("Open of a layout-1 directory: %v", err)
	}
	for _, o := range []string{"alice", "alOce"} {
		l.checkMigrated(t, s, typedKey(o))
		if _, err := s.Stat(testContext(t), o, "docs/a.txt"); err == nil {
			t.Errorf("the untyped owner %q still finds its file", o)
		}
		legacy := legacyOwnerEncoding.EncodeToString([]byte(o))
		for _, top := range []string{objectsDir, uploadsDir} {
			if _, err := os.Stat(filepath.Join(l.dir, top, legacy)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("legacy folder %s/%s: %v, want it gone", top, legacy, err)
			}
		}
	}
	// The resumed upload finishes under the new owner.
	up, err := s.BeginResumable(testContext(t), typedKey("alice"), resumeOf("up1", "big.bin", l.upload, legacyHalf))
	if err != nil {
		t.Fatalf("resume the migrated upload: %v", err)
	}
	writeAll(t, up, l.upload[legacyHalf:], 1024)
	if _, err := up.Commit(testContext(t), resumeOf("up1", "big.bin", l.upload, 0).Want); err != nil {
		t.Fatalf("commit the migrated upload: %v", err)
	}
	if got, _ := get(t, s, typedKey("alice"), "big.bin"); !bytes.Equal(got, l.upload) {
		t.Error("the migrated upload committed different bytes")
	}

	if b, err := os.ReadFile(filepath.Join(l.dir, layoutFile)); err != nil || string(b) != "2\n" {
		t.Errorf("layout file = %q, %v; want \"2\\n\"", b, err)
	}
	for _, gone := range []string{journalFile, stagingDir} {
		if _, err := os.Stat(filepath.Join(l.dir, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s after migration: %v, want it gone", gone, err)
		}
	}
	log := logs.String()
	for _, o := range []string{"alice", "alOce"} {
		if n := strings.Count(log, "owner="+typedKey(o)+" "); n != 1 {
			t.Errorf("log lines for owner %s: %d, want 1:\n%s", typedKey(o), n, log)
		}
	}
	if !strings.Contains(log, "owners=2 folders=4") {
		t.Errorf("no summary line in the log:\n%s", log)
	}
	for _, name := range []string{"a.txt", "big.bin", "up1"} {
		if strings.Contains(log, name) {
			t.Errorf("the migration log names the file %q:\n%s", name, log)
		}
	}

	// A second Open does nothing.
	s.Close()
	before := tree(t, l.dir)
	s2, logs2, err := openLogged(t, l.dir, WithOwnerMigration(typedKey))
	if err != nil {
		t.Fatalf("second Open: %v", err)
	}
	if after := tree(t, l.dir); after != before {
		t.Errorf("second Open changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if logs2.Len() != 0 {
		t.Errorf("second Open logged:\n%s", logs2)
	}
	l.checkMigrated(t, s2, typedKey("alOce"))
}

// TestMigrateResumesAfterCrash is the crash case of the migration: a run
// that died after any rename finishes at the next Open with every file in
// place, including when an old folder name is some other owner's new one.
func TestMigrateResumesAfterCrash(t *testing.T) {
	// Find an owner whose new folder name is also a canonical layout-1
	// folder name (lower-case base32 is a subset of base64url), so that
	// the old folder of one owner stands where another owner's goes.
	var newKey, clash string
	for i := 0; i < 10000 && clash == ""; i++ {
		k := fmt.Sprintf("k%d", i)
		name, _ := ownerFolderName(k)
		raw, err := legacyOwnerEncoding.DecodeString(name)
		if err == nil && len(raw) > 0 && legacyOwnerEncoding.EncodeToString(raw) == name {
			newKey, clash = k, string(raw)
		}
	}
	if clash == "" {
		t.Fatal("no clashing folder name found")
	}
	mapping := func(o string) string {
		if o == "bob" {
			return newKey // bob's new folder is clash's old one
		}
		return typedKey(o)
	}
	for crashAfter := range 5 {
		t.Run(fmt.Sprintf("crash after %d steps", crashAfter), func(t *testing.T) {
			l := newLegacyDir(t, "bob", clash)
			s := &Store{opts: defaultOptions()}
			s.opts.ownerKey = mapping
			root, lock, err := openRoot(l.dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			s.root, s.lock = root, lock
			j, err := s.planMigration()
			if err != nil {
				t.Fatal(err)
			}
			if err := s.writeJournal(j); err != nil {
				t.Fatal(err)
			}
			// Run the first steps of migrate by hand, then "crash".
			steps := []func() error{
				func() error { return s.root.MkdirAll(stagingDir+"/"+objectsDir, dirMode) },
				func() error { return s.root.MkdirAll(stagingDir+"/"+uploadsDir, dirMode) },
			}
			for _, m := range j.Moves {
				steps = append(steps, func() error { return s.moveOnce(m.Top+"/"+m.From, stagingDir+"/"+m.Top+"/"+m.To) })
			}
			steps = append(steps, func() error { j.Phase = 2; return s.writeJournal(j) })
			steps = append(steps, func() error {
				m := j.Moves[0]
				return s.moveOnce(stagingDir+"/"+m.Top+"/"+m.To, m.Top+"/"+m.To)
			})
			for _, step := range steps[:min(crashAfter*2, len(steps))] {
				if err := step(); err != nil {
					t.Fatal(err)
				}
			}
			s.Close() // a crash: the process and its lock are gone

			s2, _, err := openLogged(t, l.dir, WithOwnerMigration(mapping))
			if err != nil {
				t.Fatalf("Open after the crash: %v", err)
			}
			l.checkMigrated(t, s2, newKey)
			l.checkMigrated(t, s2, typedKey(clash))
		})
	}
}

// TestCaseSafeOwnerFolders is R10: owners that differ only in letter case
// get folder names that differ in more than case, so a case-insensitive
// filesystem keeps them apart.
func TestCaseSafeOwnerFolders(t *testing.T) {
	for _, pair := range [][2]string{{"alice", "alOce"}, {"jwt:greeterd:alice", "jwt:greeterd:ALICE"}} {
		a, _ := ownerFolderName(pair[0])
		b, _ := ownerFolderName(pair[1])
		if strings.EqualFold(a, b) {
			t.Errorf("owners %q and %q get folders %q and %q, equal but for case", pair[0], pair[1], a, b)
		}
		if a != strings.ToLower(a) || b != strings.ToLower(b) {
			t.Errorf("folder names %q, %q are not lower case", a, b)
		}
	}
	s, _ := newStore(t)
	put(t, s, "alice", "f", []byte("alice's"))
	put(t, s, "alOce", "f", []byte("alOce's"))
	if got, _ := get(t, s, "alice", "f"); string(got) != "alice's" {
		t.Errorf("alice's file = %q", got)
	}
	long := strings.Repeat("o", MaxOwnerLen)
	if name, err := ownerFolderName(long); err != nil || len(name) > 255 {
		t.Errorf("folder of the longest owner: %d bytes, %v; want at most 255", len(name), err)
	}
}

// TestMigrateRefuses checks that a migration that could lose or mix up files
// stops before anything moves.
func TestMigrateRefuses(t *testing.T) {
	tests := []struct {
		name    string
		mapping func(string) string
		prepare func(t *testing.T, dir string)
	}{
		{"two owners, one key", func(string) string { return "same" }, nil},
		{"key too long", func(o string) string { return strings.Repeat("k", MaxOwnerLen+1) }, nil},
		{"a folder no store wrote", typedKey, func(t *testing.T, dir string) {
			os.MkdirAll(filepath.Join(dir, objectsDir, "not base64!"), dirMode)
		}},
		{"a newer layout", typedKey, func(t *testing.T, dir string) {
			writeFile(t, filepath.Join(dir, layoutFile), []byte("3\n"))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := newLegacyDir(t, "alice", "bob")
			if tc.prepare != nil {
				tc.prepare(t, l.dir)
			}
			before := tree(t, l.dir)
			if _, _, err := openLogged(t, l.dir, WithOwnerMigration(tc.mapping)); err == nil {
				t.Fatal("Open = nil error, want a refusal")
			}
			if after := tree(t, l.dir); after != before {
				t.Errorf("a refused migration changed the directory:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestFreshDirectoryGetsLayout checks that a new data directory is written
// at the current layout, so it is never mistaken for an old one.
func TestFreshDirectoryGetsLayout(t *testing.T) {
	_, dir := newStore(t)
	if b, err := os.ReadFile(filepath.Join(dir, layoutFile)); err != nil || string(b) != "2\n" {
		t.Errorf("layout file of a new directory = %q, %v; want \"2\\n\"", b, err)
	}
}
