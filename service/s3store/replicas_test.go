package s3store

import (
	"errors"
	"sync"
	"testing"

	"github.com/greeter/greeter/service"
)

// replicas opens two stores on one prefix, as two greeterd processes on
// one bucket.
func replicas(t *testing.T) (a, b *Store) {
	a = openStore(t, nil)
	b = openStore(t, nil, func(o *Options) { o.Prefix = a.opts.Prefix })
	return a, b
}

// TestResumeOnAnotherReplicaAfterCrash leaves an upload held by a replica
// that died (never suspended) and finishes it on another, sending only
// what the state does not count.
func TestResumeOnAnotherReplicaAfterCrash(t *testing.T) {
	a, b := replicas(t)
	content := data(4*testPart+3, 11)
	up := begin(t, a, "id", content, 0)
	writeChunks(t, up, content[:2*testPart+7])
	// Replica a dies here: no Suspend, no Abort.
	committed, err := query(t, b, "id")
	if err != nil || committed != 2*testPart {
		t.Fatalf("Query on the other replica = %d, %v; want %d", committed, err, 2*testPart)
	}
	commitAll(t, b, begin(t, b, "id", content, committed), content, committed)
	assertClean(t, shared, b)
}

// TestTakenOverWriterStops checks that a writer whose upload another
// replica claimed can neither advance the state nor complete the upload.
func TestTakenOverWriterStops(t *testing.T) {
	a, b := replicas(t)
	content := data(4*testPart, 12)
	upA := begin(t, a, "id", content, 0)
	writeChunks(t, upA, content[:testPart])
	upB := begin(t, b, "id", content, testPart)
	// The part fails to count once it settles, after the Write that ended
	// it, or at the latest at Commit.
	if _, err := upA.Write(content[testPart : 2*testPart]); err != nil && !errors.Is(err, service.ErrUploadBusy) {
		t.Fatalf("old writer's Write = %v, want nil or ErrUploadBusy", err)
	}
	if _, err := upA.Commit(testCtx(t), service.Expect{}); !errors.Is(err, service.ErrUploadBusy) {
		t.Fatalf("old writer's Commit = %v, want ErrUploadBusy", err)
	}
	if err := upA.Suspend(); err != nil {
		t.Errorf("Suspend of the broken writer: %v", err)
	}
	commitAll(t, b, upB, content, testPart)
	assertClean(t, shared, b)
}

// TestTwoWritersRace runs two replicas' streams of one upload at once:
// exactly one completes it, and the file is right.
func TestTwoWritersRace(t *testing.T) {
	for round := range 5 {
		a, b := replicas(t)
		content := data(3*testPart+5, byte(round))
		first := begin(t, a, "id", content, 0)
		writeChunks(t, first, content[:testPart])
		if err := first.Suspend(); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var began sync.WaitGroup
		began.Add(2)
		errs := make([]error, 2)
		for i, s := range []*Store{a, b} {
			wg.Go(func() {
				up, err := s.BeginResumable(testCtx(t), owner, resume("id", "f", content, testPart))
				began.Done()
				if err != nil {
					errs[i] = err
					return
				}
				began.Wait() // both have begun (or failed to) before either writes
				for off := testPart; off < len(content) && err == nil; off += 256 << 10 {
					_, err = up.Write(content[off:min(off+256<<10, len(content))])
				}
				if err == nil {
					_, err = up.Commit(testCtx(t), service.Expect{})
				} else {
					up.Suspend()
				}
				errs[i] = err
			})
		}
		wg.Wait()
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, service.ErrUploadBusy):
				t.Errorf("round %d: loser failed with %v, want ErrUploadBusy", round, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d writers completed (errors %v), want exactly 1", round, wins, errs)
		}
		if got := get(t, a, "f"); string(got) != string(content) {
			t.Fatalf("round %d: stored file differs", round)
		}
		assertClean(t, shared, a)
	}
}
