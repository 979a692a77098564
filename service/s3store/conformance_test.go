package s3store

import (
	"testing"

	"github.com/greeter/greeter/internal/s3test"
	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storetest"
)

// harness opens each behaviour's store on the shared MinIO under a prefix
// of its own, or, for a behaviour that cuts its storage off, on a MinIO
// of its own that Cut stops.
func harness() storetest.Harness {
	return storetest.Harness{
		Open: func(t *testing.T, cfg storetest.Config) *storetest.Storage {
			srv := shared
			if cfg.Cut {
				srv = s3test.Start(t)
			}
			opts := optionsFor(t, srv)
			opts.Now = cfg.Now
			opts.MaxUploadsPerOwner = cfg.MaxUploadsPerOwner
			opts.Quotas = func(string) service.Quota { return cfg.Quota }
			open := func(t *testing.T) *Store {
				t.Helper()
				s, err := Open(testCtx(t), opts)
				if err != nil {
					t.Fatalf("opening the store on %s, prefix %q: %v", srv.Endpoint, opts.Prefix, err)
				}
				return s
			}
			cur := open(t)
			t.Cleanup(func() { cur.Close() })
			st := &storetest.Storage{
				Store: cur,
				Restart: func(t *testing.T) service.ResumableStore {
					cur.Close()
					cur = open(t)
					return cur
				},
			}
			if cfg.Cut {
				st.Cut = func(*testing.T) { srv.Stop() }
			}
			st.LoseCommitAnswer = func(t *testing.T, owner, id string) func(*testing.T) {
				b := stateBytes(t, cur, owner, id)
				return func(t *testing.T) { putState(t, cur, owner, id, b) }
			}
			return st
		},
		// Whole parts are kept, so the unit is the part size; a read ends
		// with ErrChanged when its version goes (buckets without versions
		// keep no old one); bytes past a resumable upload's size are
		// refused at Write, since no part may hold them; names form
		// folders, because the store refuses a file below a file and a
		// file over files (MinIO would store them and hide the keys
		// below from listings; see folders.go); owners are as long as on
		// the disk store.
		ResumeGranularity: testPart,
		WriteChecksSize:   true,
		ChangedReadErr:    service.ErrChanged,
		Folders:           true,
		MaxOwnerLen:       MaxOwnerLen,
		DigestAtCommit:    false, // the digest is metadata set when the multipart upload starts
	}
}

// TestConformance runs the store conformance suite (issue 13) on MinIO.
func TestConformance(t *testing.T) {
	storetest.Run(t, harness())
}
