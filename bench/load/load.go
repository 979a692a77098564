package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	mathrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/client"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

const (
	// errorPause is how long a user waits after an unexpected error, so a
	// dead server is not hammered in a tight loop.
	errorPause = 100 * time.Millisecond
	// maxSamples bounds the error messages kept for the report.
	maxSamples = 10
)

// kindStats are the outcomes of one kind of operation.
type kindStats struct {
	ok          int
	bytes       int64           // file bytes moved by successful operations
	latencies   []time.Duration // of successful operations
	rateLimited int
	errors      map[codes.Code]int
	integrity   int
}

func (s *kindStats) merge(o *kindStats) {
	s.ok += o.ok
	s.bytes += o.bytes
	s.latencies = append(s.latencies, o.latencies...)
	s.rateLimited += o.rateLimited
	s.integrity += o.integrity
	for c, n := range o.errors {
		if s.errors == nil {
			s.errors = map[codes.Code]int{}
		}
		s.errors[c] += n
	}
}

// result is what a run produced.
type result struct {
	// loaded is how long users started operations: -duration, or less
	// when interrupted. elapsed adds the operations in flight at the end.
	loaded, elapsed time.Duration
	interrupted     bool
	kinds           [numKinds]kindStats
	verified        int // downloads whose SHA-256 matched the one recorded at upload
	samples         []string
}

// counters are shared by all users for the progress line.
type counters struct {
	ok, rateLimited, failed atomic.Int64
}

// storedFile is a file a user uploaded and may download again.
type storedFile struct {
	name   string
	size   int64
	sha256 string
}

// user is one virtual user: one connection, one subject, its own files.
type user struct {
	id      int
	c       *client.Client
	cfg     *config
	rng     *mathrand.Rand
	random  io.Reader // the bytes uploads send
	files   []storedFile
	stats   [numKinds]kindStats
	verify  int
	samples []string
	shared  *counters
}

// runLoad runs cfg.users users until cfg.duration has passed or ctx ends,
// waits for their operations in flight, and returns what they saw.
func runLoad(ctx context.Context, cfg *config, creds *credentials, stderr io.Writer) (*result, error) {
	users := make([]*user, cfg.users)
	shared := &counters{}
	defer func() {
		for _, u := range users {
			if u != nil {
				u.c.Close()
			}
		}
	}()
	for i := range users {
		// One grpc.ClientConn per user, as each run of the CLI has its own.
		c, err := client.New(cfg.addr, client.Options{
			TLS:    creds.tls,
			PerRPC: client.BearerToken(creds.tokens[i%len(creds.tokens)]),
		})
		if err != nil {
			return nil, err
		}
		var seed [32]byte
		rand.Read(seed[:])
		users[i] = &user{
			id:     i,
			c:      c,
			cfg:    cfg,
			rng:    mathrand.New(mathrand.NewPCG(mathrand.Uint64(), mathrand.Uint64())),
			random: mathrand.NewChaCha8(seed),
			shared: shared,
		}
	}

	if err := preflight(ctx, users[:min(len(users), len(creds.tokens))], cfg.opTimeout); err != nil {
		return nil, err
	}

	start := time.Now()
	soft, cancel := context.WithTimeout(ctx, cfg.duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Go(func() { u.loop(soft) })
	}
	var (
		loaded      time.Duration
		interrupted bool
		stopped     = make(chan struct{})
	)
	go func() {
		<-soft.Done()
		loaded, interrupted = time.Since(start), ctx.Err() != nil
		close(stopped)
	}()
	progressDone := make(chan struct{})
	if cfg.progress > 0 {
		go func() {
			defer close(progressDone)
			t := time.NewTicker(cfg.progress)
			defer t.Stop()
			for {
				select {
				case <-soft.Done():
					return
				case <-t.C:
					fmt.Fprintf(stderr, "load: %4.0fs  ok %d  rate-limited %d  failed %d\n",
						time.Since(start).Seconds(), shared.ok.Load(), shared.rateLimited.Load(), shared.failed.Load())
				}
			}
		}()
	} else {
		close(progressDone)
	}
	wg.Wait()
	elapsed := time.Since(start)
	cancel()
	<-stopped
	<-progressDone
	res := &result{loaded: loaded, elapsed: elapsed, interrupted: interrupted}
	for _, u := range users {
		for k := range res.kinds {
			res.kinds[k].merge(&u.stats[k])
		}
		res.verified += u.verify
		for _, s := range u.samples {
			if len(res.samples) < maxSamples {
				res.samples = append(res.samples, s)
			}
		}
	}
	return res, nil
}

// preflight says hello once with each subject's token, so a wrong address
// or a rejected token fails at once instead of as thousands of errors.
// These calls are not part of the report.
func preflight(ctx context.Context, users []*user, timeout time.Duration) error {
	for i, u := range users {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := u.c.Hello(ctx, "preflight", 0)
		cancel()
		if _, limited := rateLimited(err); err != nil && !limited {
			return fmt.Errorf("preflight hello with token %d of %d: %w", i+1, len(users), err)
		}
	}
	return nil
}

// loop performs operations until stop ends. Operations run under their own
// deadline, not under stop: an operation in flight when the run ends is
// finished and counted.
func (u *user) loop(stop context.Context) {
	for stop.Err() == nil {
		k := u.next()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(stop), u.cfg.opTimeout)
		wait := u.do(ctx, k)
		cancel()
		if wait > 0 {
			sleep(stop, wait)
		}
	}
}

// next chooses the next operation: a delete while the user keeps more than
// -keep files, else a draw from -mix (an upload instead of a download while
// the user has nothing to download).
func (u *user) next() kind {
	if u.cfg.keep > 0 && len(u.files) > u.cfg.keep {
		return kindDelete
	}
	k := u.cfg.mix.pick(u.rng)
	if k == kindDownload && len(u.files) == 0 {
		k = kindUpload
	}
	return k
}

// do performs one operation of kind k, records its outcome and returns how
// long to wait before the next one.
func (u *user) do(ctx context.Context, k kind) time.Duration {
	var (
		n   int64
		err error
	)
	start := time.Now()
	switch k {
	case kindHello:
		err = u.hello(ctx)
	case kindUpload:
		n, err = u.upload(ctx)
	case kindDownload:
		n, err = u.download(ctx)
	case kindDelete:
		err = u.delete(ctx)
	}
	took := time.Since(start)
	s := &u.stats[k]
	if err == nil {
		s.ok++
		s.bytes += n
		s.latencies = append(s.latencies, took)
		u.shared.ok.Add(1)
		return 0
	}
	// DataLoss: the client found that the bytes the server stored or sent
	// do not match what the server announced.
	if errors.As(err, new(*integrityError)) || status.Code(err) == codes.DataLoss {
		s.integrity++
		u.shared.failed.Add(1)
		u.sample(fmt.Sprintf("%s: integrity failure: %v", k, err))
		return 0
	}
	if d, ok := rateLimited(err); ok {
		s.rateLimited++
		u.shared.rateLimited.Add(1)
		// Wait as asked, plus up to 10% so that users sharing an
		// identity do not come back in lockstep.
		return d + mathrand.N(d/10+1)
	}
	if s.errors == nil {
		s.errors = map[codes.Code]int{}
	}
	s.errors[status.Code(err)]++
	u.shared.failed.Add(1)
	u.sample(fmt.Sprintf("%s: %v", k, err))
	return errorPause
}

func (u *user) sample(msg string) {
	if len(u.samples) < maxSamples {
		u.samples = append(u.samples, fmt.Sprintf("user %d: %s", u.id, msg))
	}
}

// integrityError is an answer that arrived but is wrong: a download whose
// bytes differ from what was uploaded, or a wrong greeting.
type integrityError struct{ msg string }

func (e *integrityError) Error() string { return e.msg }

// hello says hello and checks the greeting.
func (u *user) hello(ctx context.Context) error {
	name, age := fmt.Sprintf("load user %d", u.id), u.rng.Int32N(120)
	msg, err := u.c.Hello(ctx, name, age)
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("Hello, %s! Your age is %d", name, age); msg != want {
		return &integrityError{fmt.Sprintf("greeting %q, want %q", msg, want)}
	}
	return nil
}

// upload stores random bytes under a new random name in the user's folder
// and records their SHA-256.
func (u *user) upload(ctx context.Context) (int64, error) {
	name := fmt.Sprintf("load/u%03d/%016x.bin", u.id, u.rng.Uint64())
	size := u.cfg.sizes.pick(u.rng)
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(u.random, size), h)
	if _, err := u.c.Upload(ctx, name, src, size, nil); err != nil {
		return 0, err
	}
	// Upload has compared the server's SHA-256 with the one it computed
	// while sending; h is the SHA-256 of what this user generated.
	u.files = append(u.files, storedFile{name: name, size: size, sha256: hex.EncodeToString(h.Sum(nil))})
	return size, nil
}

// download fetches one of the user's files and compares its SHA-256 and
// size with the ones recorded when it was uploaded.
func (u *user) download(ctx context.Context) (int64, error) {
	f := u.files[u.rng.IntN(len(u.files))]
	h := sha256.New()
	cw := &countingWriter{w: h}
	if _, err := u.c.Download(ctx, f.name, cw, nil); err != nil {
		return 0, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != f.sha256 || cw.n != f.size {
		return 0, &integrityError{fmt.Sprintf("%s: downloaded %d bytes with sha256 %s, uploaded %d bytes with sha256 %s", f.name, cw.n, got, f.size, f.sha256)}
	}
	u.verify++
	return cw.n, nil
}

// delete removes the user's oldest file. It is forgotten unless the delete
// was rate-limited, so a file that cannot be deleted is not retried forever.
func (u *user) delete(ctx context.Context) error {
	f := u.files[0]
	_, err := u.c.Greeter().DeleteFile(ctx, &pb.MetaData{Filename: f.name})
	if _, limited := rateLimited(err); !limited {
		u.files = u.files[1:]
	}
	return err
}

// rateLimited reports whether err is a rate-limit rejection:
// ResourceExhausted carrying RetryInfo, and the delay it asks for.
// ResourceExhausted without RetryInfo (a message or file too large) is an
// error like any other.
func rateLimited(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.ResourceExhausted {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return max(ri.GetRetryDelay().AsDuration(), 0), true
		}
	}
	return 0, false
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
