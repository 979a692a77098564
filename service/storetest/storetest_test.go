package storetest_test

import (
	"testing"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/storetest"
)

// memHarness runs the suite on memStores that take the sides opts pick,
// and states them.
func memHarness(opts memOptions) storetest.Harness {
	var changed error
	if opts.dropsVersions {
		changed = errChanged
	}
	return storetest.Harness{
		Open: func(t *testing.T, cfg storetest.Config) *storetest.Storage {
			s := newMemStore(opts, cfg)
			return &storetest.Storage{
				Store: s,
				Restart: func(*testing.T) service.ResumableStore {
					s = s.restart()
					return s
				},
				Cut: func(*testing.T) {
					s.b.mu.Lock()
					s.b.down = true
					s.b.mu.Unlock()
				},
				LoseCommitAnswer: func(t *testing.T, owner, id string) func(*testing.T) {
					return s.lostAnswer(t, owner, id)
				},
			}
		},
		ResumeGranularity: opts.unit,
		WriteChecksSize:   opts.checkOnWrite,
		ChangedReadErr:    changed,
		MaxOwnerLen:       maxOwnerLen,
		DigestAtCommit:    !opts.digestFirst,
	}
}

// TestSuite runs the suite on the reference store twice: once like the
// disk store (every byte kept, versions kept, excess bytes refused at
// Commit) and once like an object store (whole parts kept, reads end when
// their version goes, excess bytes refused at Write).
func TestSuite(t *testing.T) {
	t.Run("DiskLike", func(t *testing.T) {
		storetest.Run(t, memHarness(memOptions{unit: 1}))
	})
	t.Run("ObjectLike", func(t *testing.T) {
		storetest.Run(t, memHarness(memOptions{unit: 16 << 10, checkOnWrite: true, dropsVersions: true, digestFirst: true}))
	})
}
