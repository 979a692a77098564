package diskstore_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
	"github.com/greeter/greeter/service/storetest"
)

// closingStore is a store the harness closes: a *diskstore.Store or a
// *diskstore.Live.
type closingStore interface {
	service.ResumableStore
	Close() error
}

// harness opens each behaviour's store on a data directory of its own,
// as a plain Store or, with live, as the Live store greeterd serves from.
func harness(live bool) storetest.Harness {
	return storetest.Harness{
		Open: func(t *testing.T, cfg storetest.Config) *storetest.Storage {
			dir := filepath.Join(t.TempDir(), "data")
			opts := []diskstore.Option{
				diskstore.WithClock(cfg.Now),
				diskstore.WithMaxUploadsPerOwner(cfg.MaxUploadsPerOwner),
				diskstore.WithQuotas(func(string) service.Quota { return cfg.Quota }),
			}
			open := func(t *testing.T) closingStore {
				t.Helper()
				var s closingStore
				var err error
				if live {
					s, err = diskstore.OpenLive(dir, opts...)
				} else {
					s, err = diskstore.Open(dir, opts...)
				}
				if err != nil {
					t.Fatalf("opening the store on %s: %v", dir, err)
				}
				return s
			}
			cur := open(t)
			t.Cleanup(func() { cur.Close() })
			return &storetest.Storage{
				Store: cur,
				Restart: func(t *testing.T) service.ResumableStore {
					if err := cur.Close(); err != nil {
						t.Fatalf("closing the store: %v", err)
					}
					cur = open(t)
					return cur
				},
				Cut: func(t *testing.T) {
					if err := os.RemoveAll(dir); err != nil {
						t.Fatalf("removing the data directory: %v", err)
					}
				},
				LoseCommitAnswer: func(t *testing.T, _, id string) func(*testing.T) {
					// The state file, found by its name: the suite's
					// owners have one upload of each id.
					path := stateFile(t, dir, id)
					b, err := os.ReadFile(path)
					if err != nil {
						t.Fatalf("reading the state file: %v", err)
					}
					return func(t *testing.T) {
						if err := os.WriteFile(path, b, 0o600); err != nil {
							t.Fatalf("putting the state file back: %v", err)
						}
					}
				},
			}
		},
		// Every byte is kept; an open file keeps its version; bytes past a
		// resumable upload's size are refused at Commit; names are paths
		// of folders.
		ResumeGranularity: 1,
		WriteChecksSize:   false,
		ChangedReadErr:    nil,
		Folders:           true,
		MaxOwnerLen:       diskstore.MaxOwnerLen,
		DigestAtCommit:    true,
	}
}

// stateFile returns the path of the state file of the one upload id under
// the data directory dir.
func stateFile(t *testing.T, dir, id string) string {
	t.Helper()
	var found []string
	err := filepath.WalkDir(filepath.Join(dir, "uploads"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && d.Name() == id+".json" {
			found = append(found, p)
		}
		return err
	})
	if err != nil || len(found) != 1 {
		t.Fatalf("state files of upload %q: %q, %v; want one", id, found, err)
	}
	return found[0]
}

// TestConformance runs the store conformance suite (issue 13) on a Store
// and on a Live store.
func TestConformance(t *testing.T) {
	t.Run("Store", func(t *testing.T) { storetest.Run(t, harness(false)) })
	t.Run("Live", func(t *testing.T) { storetest.Run(t, harness(true)) })
}
