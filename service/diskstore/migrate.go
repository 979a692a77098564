package diskstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
)

// The layout of a data directory is versioned by the file <data-dir>/layout:
//
//	1 (no layout file)  owner folders are the owner string in unpadded
//	                    URL-safe base64 (letter case matters).
//	2                   owner folders are the typed owner key in lower-case
//	                    base32 (see owner.go).
//
// A data directory without a layout file is migrated once, at Open, from 1 to
// 2: each owner folder in objects/ and uploads/ is renamed after the owner's
// new key (see WithOwnerMigration). Files are never copied, rewritten or
// deleted; resumable-upload state files name no owner, so they move with
// their folder unchanged. The migration is resumable: its plan is written to
// layout.migrating before the first rename, every folder moves in two
// journaled phases through migrating/ (so an old name that equals some new
// name can never be mistaken for it), and the layout file is written last.
const (
	layoutFile    = "layout"
	layoutVersion = 2
	journalFile   = "layout.migrating"
	stagingDir    = "migrating"
)

// WithOwnerMigration sets how the owners of a layout-1 data directory map to
// the owner keys the store is called with now: key(owner) is the new owner
// of the files the old owner had. It must give distinct owners distinct
// keys, each 1 to MaxOwnerLen bytes long, or Open fails before anything
// moves. The default keeps every owner as it was (only the folder names'
// encoding changes).
func WithOwnerMigration(key func(owner string) string) Option {
	return func(o *options) { o.ownerKey = key }
}

// move is one owner folder's move in the migration: top/From becomes
// top/To by way of migrating/top/To.
type move struct {
	Top   string `json:"top"`
	From  string `json:"from"`
	To    string `json:"to"`
	Owner string `json:"owner"`
	Key   string `json:"key"`
}

// journal is the content of layout.migrating.
type journal struct {
	// Phase is 1 while folders move into migrating/, 2 once all have and
	// they move back out.
	Phase int    `json:"phase"`
	Moves []move `json:"moves"`
}

// upgradeLayout brings the data directory to layoutVersion: it returns at
// once when the layout file says so, finishes an interrupted migration, or
// migrates a layout-1 directory.
func (s *Store) upgradeLayout() error {
	b, err := s.root.ReadFile(layoutFile)
	switch {
	case err == nil:
		if v := strings.TrimSpace(string(b)); v != strconv.Itoa(layoutVersion) {
			return fmt.Errorf("diskstore: data directory layout %.16q is not supported (this version uses %d)", v, layoutVersion)
		}
		// A crash between writing the layout and removing the journal
		// leaves the journal behind; it describes a finished migration.
		if err := s.root.Remove(journalFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("diskstore: %w", err)
		}
		return nil
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("diskstore: read layout: %w", err)
	}
	j, err := s.loadJournal()
	if err != nil {
		return err
	}
	if j == nil {
		if j, err = s.planMigration(); err != nil {
			return err
		}
		if len(j.Moves) > 0 {
			if err := s.writeJournal(j); err != nil {
				return err
			}
		}
	}
	if err := s.migrate(j); err != nil {
		return fmt.Errorf("diskstore: migrating owner folders (resumed at the next Open): %w", err)
	}
	return nil
}

// loadJournal returns the journal of an interrupted migration, or nil.
func (s *Store) loadJournal() (*journal, error) {
	b, err := s.root.ReadFile(journalFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("diskstore: read migration journal: %w", err)
	}
	j := new(journal)
	if err := json.Unmarshal(b, j); err != nil || (j.Phase != 1 && j.Phase != 2) {
		return nil, fmt.Errorf("diskstore: migration journal %s is damaged; restore the data directory from a backup", journalFile)
	}
	return j, nil
}

// planMigration lists the owner folders of a layout-1 directory and where
// each goes. It fails, before anything moves, on a folder that no layout-1
// store wrote and on a mapping that is not one to one or gives an unusable
// key.
func (s *Store) planMigration() (*journal, error) {
	key := s.opts.ownerKey
	if key == nil {
		key = func(owner string) string { return owner }
	}
	j := &journal{Phase: 1}
	keys := map[string]string{} // key -> legacy owner
	for _, top := range []string{objectsDir, uploadsDir} {
		entries, err := fs.ReadDir(s.root.FS(), top)
		if err != nil {
			return nil, fmt.Errorf("diskstore: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				continue // never an owner folder; the store ignores it
			}
			raw, err := legacyOwnerEncoding.DecodeString(e.Name())
			if err != nil || len(raw) == 0 || legacyOwnerEncoding.EncodeToString(raw) != e.Name() {
				return nil, fmt.Errorf("diskstore: %s/%.64q is not a layout-1 owner folder; move it out of the data directory", top, e.Name())
			}
			owner := string(raw)
			k := key(owner)
			to, err := ownerFolderName(k)
			if err != nil {
				return nil, fmt.Errorf("diskstore: owner %.64q maps to key %.64q: %w", owner, k, err)
			}
			if prev, dup := keys[k]; dup && prev != owner {
				return nil, fmt.Errorf("diskstore: owners %.64q and %.64q both map to key %.64q", prev, owner, k)
			}
			keys[k] = owner
			j.Moves = append(j.Moves, move{Top: top, From: e.Name(), To: to, Owner: owner, Key: k})
		}
	}
	return j, nil
}

// migrate carries out j from its phase on, then writes the layout file and
// removes the journal. Every step can be repeated after a crash.
func (s *Store) migrate(j *journal) error {
	tops := []string{objectsDir, uploadsDir}
	staged := []string{stagingDir + "/" + objectsDir, stagingDir + "/" + uploadsDir}
	if j.Phase == 1 && len(j.Moves) > 0 {
		for _, d := range staged {
			if err := s.root.MkdirAll(d, dirMode); err != nil {
				return err
			}
		}
		for _, m := range j.Moves {
			if err := s.moveOnce(m.Top+"/"+m.From, stagingDir+"/"+m.Top+"/"+m.To); err != nil {
				return err
			}
		}
		if err := s.syncDirs(append(tops, staged...)); err != nil {
			return err
		}
		j.Phase = 2
		if err := s.writeJournal(j); err != nil {
			return err
		}
	}
	owners := map[string]int{}
	for _, m := range j.Moves {
		if err := s.moveOnce(stagingDir+"/"+m.Top+"/"+m.To, m.Top+"/"+m.To); err != nil {
			return err
		}
		owners[m.Key]++
	}
	if len(j.Moves) > 0 {
		if err := s.syncDirs(append(tops, staged...)); err != nil {
			return err
		}
	}
	if err := s.writeAtomic(layoutFile, []byte(strconv.Itoa(layoutVersion)+"\n")); err != nil {
		return err
	}
	// The staging folders are empty now; Remove refuses a folder that is
	// not, so nothing in them can be lost.
	for _, d := range append(staged, stagingDir) {
		if err := s.root.Remove(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.opts.logger.Warn("migration staging folder left behind", slog.String("folder", d), slog.Any("error", err))
		}
	}
	if err := s.root.Remove(journalFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := s.syncDir("."); err != nil {
		return err
	}
	if len(j.Moves) == 0 {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(owners)) {
		s.opts.logger.Info("owner folders migrated", slog.String("owner", k), slog.Int("folders", owners[k]))
	}
	s.opts.logger.Info("data directory migrated to typed owner keys",
		slog.Int("layout", layoutVersion), slog.Int("owners", len(owners)), slog.Int("folders", len(j.Moves)))
	return nil
}

// moveOnce renames src to dst unless an earlier run did: a missing src with
// dst present is done. It never replaces or merges into an existing dst.
func (s *Store) moveOnce(src, dst string) error {
	_, serr := s.root.Lstat(src)
	_, derr := s.root.Lstat(dst)
	switch {
	case serr == nil && derr == nil:
		return fmt.Errorf("both %s and %s exist; resolve by hand", src, dst)
	case serr == nil:
		return s.root.Rename(src, dst)
	case !errors.Is(serr, fs.ErrNotExist):
		return serr
	case derr == nil:
		return nil // moved before a crash
	case errors.Is(derr, fs.ErrNotExist):
		return fmt.Errorf("%s is missing from the data directory", src)
	default:
		return derr
	}
}

// syncDirs fsyncs the folders dirs.
func (s *Store) syncDirs(dirs []string) error {
	for _, d := range dirs {
		if err := s.syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// writeJournal replaces the journal atomically.
func (s *Store) writeJournal(j *journal) error {
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return s.writeAtomic(journalFile, b)
}

// writeAtomic replaces the file name in the data directory's top folder
// with data: temporary file, sync, rename, folder sync.
func (s *Store) writeAtomic(name string, data []byte) error {
	tmp := name + tmpSuffix
	f, err := s.root.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, fileMode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.root.Rename(tmp, name)
	}
	if err != nil {
		s.root.Remove(tmp)
		return err
	}
	return s.syncDir(path.Dir(name))
}
