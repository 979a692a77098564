package s3store

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/coordination/redislease"
	"github.com/greeter/greeter/coordination/redisusage"
	"github.com/greeter/greeter/internal/redistest"
	"github.com/greeter/greeter/service"
)

// Lease times of the tests with Redis: short, so that takeovers are quick,
// and a call timeout of 1 s so that a loaded machine does not fail open.
const (
	sharedTTL      = 1500 * time.Millisecond
	sharedTakeover = time.Second
)

// sharedReplica is a Store standing for one greeterd replica that shares
// upload leases and usage through Redis.
type sharedReplica struct {
	*Store
	leases *redislease.Leases
	log    *redistest.LogBuffer
}

// sharedReplicas opens two stores on one prefix of the shared MinIO, each
// with its own Redis client, leases and usage counter on rs.
func sharedReplicas(t *testing.T, rs *redistest.Server, mods ...func(*Options)) (a, b *sharedReplica) {
	t.Helper()
	open := func(prefix string) *sharedReplica {
		r := &sharedReplica{log: &redistest.LogBuffer{}}
		logger := slog.New(slog.NewTextHandler(r.log, nil))
		rdb := rs.Client(t)
		r.leases = redislease.New(rdb, redislease.Options{TTL: sharedTTL, Takeover: sharedTakeover,
			ProbeInterval: 100 * time.Millisecond, Timeout: time.Second, Logger: logger})
		t.Cleanup(r.leases.Close)
		var usage *redisusage.Usage
		r.Store = openStore(t, nil, append(mods, func(o *Options) {
			if prefix != "" {
				o.Prefix = prefix
			}
			o.Leases = r.leases
			o.Usage = func(tally coordination.Tally, local coordination.Usage) coordination.Usage {
				usage = redisusage.New(rdb, tally, local, redisusage.Options{ProbeInterval: 100 * time.Millisecond,
					Timeout: time.Second, Logger: logger})
				return usage
			}
		})...)
		t.Cleanup(usage.Close)
		return r
	}
	a = open("")
	b = open(a.opts.Prefix)
	return a, b
}

// released reports whether up, a resumable upload, was let go.
func released(up service.ResumableUpload) bool {
	r := up.(*resumable)
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// wantStored checks that the file f on s holds content and that its
// recorded SHA-256 is that of its bytes.
func wantStored(t *testing.T, s *Store, content []byte) {
	t.Helper()
	got := get(t, s, "f")
	info, err := s.Stat(testCtx(t), owner, "f")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, content) || info.SHA256 != sha256.Sum256(got) {
		t.Fatalf("stored %d bytes, recorded SHA-256 %x: want the %d bytes uploaded and their SHA-256", len(got), info.SHA256, len(content))
	}
}

// writeUntilErr writes b in the service's chunks until a Write fails.
func writeUntilErr(up io.Writer, b []byte) error {
	for len(b) > 0 {
		n := min(len(b), 256<<10)
		if _, err := up.Write(b[:n]); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// TestLeaseTakeoverFromALiveStream resumes on replica b an upload that a
// stream on replica a holds: a is asked to let go and does, without
// writing again, b takes over within the bound, a's next write fails with
// ErrUploadBusy, and b's file is right.
func TestLeaseTakeoverFromALiveStream(t *testing.T) {
	a, b := sharedReplicas(t, redistest.Start(t))
	content := data(3*testPart+17, 21)
	upA := begin(t, a.Store, "id", content, 0)
	writeChunks(t, upA, content[:testPart+5])
	committed, err := query(t, b.Store, "id")
	if err != nil || committed != testPart {
		t.Fatalf("Query = %d, %v; want %d", committed, err, testPart)
	}
	start := time.Now()
	upB := begin(t, b.Store, "id", content, committed)
	if took := time.Since(start); took >= sharedTakeover {
		t.Errorf("taking over from a live stream took %v, want less than the bound %v", took, sharedTakeover)
	}
	redistest.Eventually(t, 3*sharedTakeover, "a lets go when asked", func() bool { return released(upA) })
	if _, err := upA.Write(content[testPart+5 : testPart+6]); !errors.Is(err, service.ErrUploadBusy) {
		t.Fatalf("old stream's Write = %v, want ErrUploadBusy", err)
	}
	if err := upA.Suspend(); err != nil {
		t.Errorf("old stream's Suspend = %v", err)
	}
	commitAll(t, b.Store, upB, content, committed)
	wantStored(t, b.Store, content)
	assertClean(t, shared, b.Store)
}

// TestLeaseTakeoverFromACrashedReplica stops replica a's keep-alive and
// listener without releasing: b takes over after the bound, and a stream
// that still writes on a fails at its next part (the state's fence).
func TestLeaseTakeoverFromACrashedReplica(t *testing.T) {
	a, b := sharedReplicas(t, redistest.Start(t))
	content := data(3*testPart+17, 22)
	upA := begin(t, a.Store, "id", content, 0)
	writeChunks(t, upA, content[:testPart+5])
	a.leases.Close() // crashed, as far as Redis can tell
	start := time.Now()
	upB := begin(t, b.Store, "id", content, testPart)
	if took := time.Since(start); took < sharedTakeover*9/10 || took > sharedTakeover+2*time.Second {
		t.Errorf("taking over from a crashed replica took %v, want about the bound %v", took, sharedTakeover)
	}
	if err := writeUntilErr(upA, content[testPart+5:]); !errors.Is(err, service.ErrUploadBusy) {
		t.Fatalf("the stream of the crashed replica wrote on: %v, want ErrUploadBusy", err)
	}
	upA.Suspend()
	commitAll(t, b.Store, upB, content, testPart)
	wantStored(t, b.Store, content)
	assertClean(t, shared, b.Store)
}

// TestRedisDownMidUpload kills Redis while a stream writes: the upload
// goes on and completes on the conditional writes alone. When Redis is
// back, leases work again.
func TestRedisDownMidUpload(t *testing.T) {
	rs := redistest.Start(t)
	a, b := sharedReplicas(t, rs)
	content := data(3*testPart+17, 23)
	up := begin(t, a.Store, "id", content, 0)
	writeChunks(t, up, content[:testPart+5])
	rs.Kill()
	commitAll(t, a.Store, up, content, testPart+5)
	wantStored(t, a.Store, content)
	if n := a.log.Count(`msg="redis unreachable: upload leases`); n != 1 {
		t.Errorf("lease outage logged %d times, want once", n)
	}

	rs.Restart()
	redistest.Eventually(t, 10*time.Second, "leases shared again", func() bool {
		return a.log.Count(`msg="redis answers again: upload leases`) == 1
	})
	again := data(2*testPart+3, 24)
	upA := begin(t, a.Store, "id2", again, 0)
	writeChunks(t, upA, again[:testPart])
	upB := begin(t, b.Store, "id2", again, testPart)
	redistest.Eventually(t, 3*sharedTakeover, "a lets go when asked", func() bool { return released(upA) })
	commitAll(t, b.Store, upB, again, testPart)
	wantStored(t, b.Store, again)
	assertClean(t, shared, b.Store)
}

// TestRacingStreamsWithLeases begins one upload on two replicas at once:
// exactly one stream completes it, the other gets ErrUploadBusy.
func TestRacingStreamsWithLeases(t *testing.T) {
	a, b := sharedReplicas(t, redistest.Start(t))
	content := data(2*testPart+5, 25)
	var wg, began sync.WaitGroup
	began.Add(2)
	errs := make([]error, 2)
	for i, s := range []*Store{a.Store, b.Store} {
		wg.Go(func() {
			up, err := s.BeginResumable(testCtx(t), owner, resume("id", "f", content, 0))
			began.Done()
			began.Wait() // both have begun (or failed to) before either writes
			if err == nil {
				if err = writeUntilErr(up, content); err == nil {
					_, err = up.Commit(testCtx(t), service.Expect{})
				} else {
					up.Suspend()
				}
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
			t.Errorf("loser failed with %v, want ErrUploadBusy", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d streams completed (errors %v), want exactly 1", wins, errs)
	}
	wantStored(t, a.Store, content)
	assertClean(t, shared, a.Store)
}

// TestQuotaAcrossReplicas gives an owner a bytes quota that one upload on
// each replica would exceed together: the second is refused. After Redis
// restarts empty, usage is counted again from MinIO at its next use.
func TestQuotaAcrossReplicas(t *testing.T) {
	rs := redistest.Start(t)
	q := service.Quota{Bytes: 10 * mib}
	a, b := sharedReplicas(t, rs, func(o *Options) { o.Quotas = func(string) service.Quota { return q } })
	big := data(6*mib, 26)
	upA := begin(t, a.Store, "id1", big, 0) // holds 6 MiB
	_, err := b.BeginResumable(testCtx(t), owner, resume("id2", "g", big, 0))
	var qe *service.QuotaError
	if !errors.As(err, &qe) || qe.Subject != service.QuotaBytes || qe.Used != 6*mib {
		t.Fatalf("second upload on the other replica: %v, want a bytes QuotaError with 6 MiB used", err)
	}
	put(t, b.Store, "small", data(3*mib, 27))
	wantUsage(t, a.Store, 9*mib, 2)
	up, err := a.Create(testCtx(t), owner, "more")
	if err != nil {
		t.Fatal(err)
	}
	if err := writeUntilErr(up, data(2*mib, 28)); !errors.As(err, &qe) {
		t.Fatalf("a plain upload past the shared quota: %v, want a QuotaError", err)
	}

	rs.Restart() // empty: every owner is counted again at its next use
	rdb := rs.Client(t)
	redistest.Eventually(t, 10*time.Second, "usage counted again from the bucket into Redis", func() bool {
		u, err := b.Usage(testCtx(t), owner)
		keys, _ := rdb.Keys(testCtx(t), redisusage.DefaultPrefix+"usage:*").Result()
		return err == nil && u.Bytes == 9*mib && u.Objects == 2 && len(keys) == 1
	})
	if err := upA.Abort(); err != nil {
		t.Fatal(err)
	}
	wantUsage(t, b.Store, 3*mib, 1)
	assertClean(t, shared, a.Store)
}
