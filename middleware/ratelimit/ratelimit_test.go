package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/middleware/auth"
	"github.com/greeter/greeter/middleware/internal/authtest"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/middleware/standard"
	"github.com/greeter/greeter/proto/greeterpb"
)

var off = ratelimit.Rate{PerSecond: -1}

// rejections counts OnReject reasons.
type rejections struct {
	mu sync.Mutex
	n  map[string]int
}

func (r *rejections) add(reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n == nil {
		r.n = map[string]int{}
	}
	r.n[reason]++
}

func (r *rejections) get(reason string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n[reason]
}

// countingServer counts the handler invocations of UploadFile.
type countingServer struct {
	greetertest.Server
	uploads atomic.Int32
}

func (s *countingServer) UploadFile(st grpc.ClientStreamingServer[greeterpb.UploadFileRequest, greeterpb.StringResponse]) error {
	s.uploads.Add(1)
	return s.Server.UploadFile(st)
}

type env struct {
	cc      *grpc.ClientConn
	limiter *ratelimit.Limiter
	key     *authtest.Key
	rejects *rejections
	authed  *atomic.Int32
	svc     *countingServer
}

// start serves the standard chain with real tokens and o's limits.
func start(t *testing.T, o ratelimit.Options) *env {
	t.Helper()
	return startWithKey(t, o, authtest.NewKey(t, t.TempDir(), "ed25519", "k1"))
}

// startWithKey is start with tokens signed by key, so that several servers
// (replicas) accept the same tokens.
func startWithKey(t *testing.T, o ratelimit.Options, key *authtest.Key) *env {
	t.Helper()
	e := &env{rejects: &rejections{}, authed: &atomic.Int32{}, svc: &countingServer{}, key: key}
	o.OnReject = func(_ context.Context, reason string) { e.rejects.add(reason) }
	e.limiter = ratelimit.New(o)
	cfg := authtest.Config(e.key)
	cfg.OnResult = func(context.Context, string) { e.authed.Add(1) }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := auth.New(ctx, cfg)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	chain := standard.Chain(standard.Config{Auth: a.Plugin(), Limiter: e.limiter})
	e.cc = greetertest.StartService(t, e.svc, chain.ServerOptions())
	return e
}

func (e *env) ctx(t *testing.T, subject string) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tok := e.key.Token(t, subject, "files:read files:write")
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok), cancel
}

func (e *env) hello(t *testing.T, subject string, opts ...grpc.CallOption) error {
	ctx, cancel := e.ctx(t, subject)
	defer cancel()
	_, err := greeterpb.NewGreeterClient(e.cc).SayHello(ctx, &greeterpb.HelloRequest{Name: "x"}, opts...)
	return err
}

// wantExhausted checks that err is ResourceExhausted with msg and a
// RetryInfo delay of want.
func wantExhausted(t *testing.T, err error, msg string, want time.Duration) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || st.Message() != msg {
		t.Fatalf("got %v %q, want ResourceExhausted %q", st.Code(), st.Message(), msg)
	}
	got, ok := ratelimit.RetryDelay(err)
	if !ok {
		t.Fatalf("ResourceExhausted without RetryInfo")
	}
	if got != want {
		t.Errorf("RetryInfo delay: got %v, want %v", got, want)
	}
}

func TestUnaryLimitPerIdentity(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, ratelimit.Options{PerPeer: off, Unary: ratelimit.Rate{PerSecond: 2, Burst: 3}})
		for i := range 3 {
			if err := e.hello(t, "alice"); err != nil {
				t.Fatalf("alice call %d within burst: %v", i+1, err)
			}
		}
		var trailer metadata.MD
		err := e.hello(t, "alice", grpc.Trailer(&trailer))
		wantExhausted(t, err, "rate limit exceeded", 500*time.Millisecond)
		if got, want := trailer.Get("grpc-retry-pushback-ms"), []string{"500"}; len(got) != 1 || got[0] != want[0] {
			t.Errorf("grpc-retry-pushback-ms trailer: got %q, want %q", got, want)
		}
		if err := e.hello(t, "bob"); err != nil {
			t.Errorf("bob while alice is limited: got %v, want OK", err)
		}
		time.Sleep(500 * time.Millisecond)
		if err := e.hello(t, "alice"); err != nil {
			t.Errorf("alice after the refill: got %v, want OK", err)
		}
		if err := e.hello(t, "alice"); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("alice right after using the refilled token: got %v, want ResourceExhausted", err)
		}
		if got := e.rejects.get(ratelimit.ReasonUnary); got != 2 {
			t.Errorf("unary rejections: got %d, want 2", got)
		}
	})
}

func TestPerPeerLimitRunsBeforeAuthentication(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, ratelimit.Options{PerPeer: ratelimit.Rate{PerSecond: 1, Burst: 2}})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer garbage.garbage.garbage")
		c := greeterpb.NewGreeterClient(e.cc)
		for i := range 2 {
			if _, err := c.SayHello(ctx, &greeterpb.HelloRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("garbage token %d: got %v, want Unauthenticated", i+1, err)
			}
		}
		_, err := c.SayHello(ctx, &greeterpb.HelloRequest{})
		wantExhausted(t, err, "rate limit exceeded for this address", time.Second)
		if got := e.authed.Load(); got != 2 {
			t.Errorf("authentications attempted: got %d, want 2 (the third call is refused first)", got)
		}
	})
}

// openUpload starts an upload for subject and sends its metadata.
func openUpload(t *testing.T, e *env, ctx context.Context) grpc.ClientStreamingClient[greeterpb.UploadFileRequest, greeterpb.StringResponse] {
	t.Helper()
	s, err := greeterpb.NewGreeterClient(e.cc).UploadFile(ctx)
	if err != nil {
		t.Fatalf("UploadFile: %v", err)
	}
	if err := s.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_Metadata{
		Metadata: &greeterpb.MetaData{Filename: "f"}}}); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("send metadata: %v", err)
	}
	return s
}

func TestConcurrentTransferCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, ratelimit.Options{PerPeer: off, Transfer: off, MaxConcurrentTransfers: 2})
		ctx, cancel := e.ctx(t, "alice")
		defer cancel()
		first := openUpload(t, e, ctx)
		second := openUpload(t, e, ctx)
		synctest.Wait() // both handlers are running and waiting for chunks
		if got := e.svc.uploads.Load(); got != 2 {
			t.Fatalf("running upload handlers: got %d, want 2", got)
		}
		_, err := openUpload(t, e, ctx).CloseAndRecv()
		wantExhausted(t, err, "too many concurrent transfers", time.Second)
		if got := e.svc.uploads.Load(); got != 2 {
			t.Errorf("upload handlers after the rejection: got %d, want 2 (rejected before any byte is read)", got)
		}
		bobCtx, bobCancel := e.ctx(t, "bob")
		defer bobCancel()
		if _, err := openUpload(t, e, bobCtx).CloseAndRecv(); err != nil {
			t.Errorf("bob's upload while alice is at the cap: got %v, want OK", err)
		}
		if _, err := first.CloseAndRecv(); err != nil {
			t.Fatalf("finish first upload: %v", err)
		}
		if _, err := openUpload(t, e, ctx).CloseAndRecv(); err != nil {
			t.Errorf("alice's upload after one finished: got %v, want OK", err)
		}
		if _, err := second.CloseAndRecv(); err != nil {
			t.Fatalf("finish second upload: %v", err)
		}
		if got := e.rejects.get(ratelimit.ReasonConcurrency); got != 1 {
			t.Errorf("concurrency rejections: got %d, want 1", got)
		}
	})
}

func TestTransferStartRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, ratelimit.Options{PerPeer: off, Transfer: ratelimit.Rate{PerSecond: 0.5, Burst: 2}})
		download := func() error {
			ctx, cancel := e.ctx(t, "alice")
			defer cancel()
			s, err := greeterpb.NewGreeterClient(e.cc).DownloadFile(ctx, &greeterpb.MetaData{Filename: "f", Limit: 10})
			if err != nil {
				return err
			}
			for {
				if _, err := s.Recv(); errors.Is(err, io.EOF) {
					return nil
				} else if err != nil {
					return err
				}
			}
		}
		for i := range 2 {
			if err := download(); err != nil {
				t.Fatalf("download %d within burst: %v", i+1, err)
			}
		}
		wantExhausted(t, download(), "transfer rate limit exceeded", 2*time.Second)
		time.Sleep(2 * time.Second)
		if err := download(); err != nil {
			t.Errorf("download after the refill: got %v, want OK", err)
		}
	})
}

func TestBandwidthThrottlesInsteadOfFailing(t *testing.T) {
	const (
		rate  = 64 << 10
		total = 512 << 10
	)
	synctest.Test(t, func(t *testing.T) {
		// The burst is smaller than one 64 KiB chunk message, so every
		// message is waited for in two parts.
		e := start(t, ratelimit.Options{PerPeer: off, Transfer: off, Bandwidth: rate, BandwidthBurst: 60 << 10})
		ctx, cancel := e.ctx(t, "alice")
		defer cancel()
		start := time.Now()
		s, err := greeterpb.NewGreeterClient(e.cc).DownloadFile(ctx, &greeterpb.MetaData{Filename: "f", Limit: total})
		if err != nil {
			t.Fatalf("DownloadFile: %v", err)
		}
		got := 0
		for {
			m, err := s.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("download throttled: got %v, want it to finish", err)
			}
			got += len(m.GetChunkData())
		}
		if got != total {
			t.Errorf("downloaded bytes: got %d, want %d", got, total)
		}
		// The bucket starts full (60 KiB), so the rest takes at least
		// (512-60) KiB at 64 KiB/s.
		if elapsed, least := time.Since(start), time.Duration(float64(total-60<<10)/rate*float64(time.Second)); elapsed < least {
			t.Errorf("download took %v, want at least %v at %d B/s", elapsed, least, rate)
		}
		if got := e.rejects.get(ratelimit.ReasonTransfer) + e.rejects.get(ratelimit.ReasonConcurrency); got != 0 {
			t.Errorf("rejections: got %d, want 0", got)
		}

		// A deadline the throttled transfer cannot meet ends in
		// DeadlineExceeded, not ResourceExhausted.
		short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
		defer cancelShort()
		s, err = greeterpb.NewGreeterClient(e.cc).DownloadFile(short, &greeterpb.MetaData{Filename: "f", Limit: total})
		if err != nil {
			t.Fatalf("DownloadFile: %v", err)
		}
		for {
			if _, err = s.Recv(); err != nil {
				break
			}
		}
		if status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("throttled download past its deadline: got %v, want DeadlineExceeded", err)
		}
	})
}

func TestLimiterTablesAreBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, ratelimit.Options{PerPeer: off, MaxKeys: 10})
		for i := range 50 {
			if err := e.hello(t, fmt.Sprintf("subject-%d", i)); err != nil {
				t.Fatalf("subject %d: %v", i, err)
			}
		}
		_, ids := e.limiter.Keys()
		if ids > 10 {
			t.Errorf("identity keys after 50 subjects: got %d, want at most 10", ids)
		}
		if _, ev := e.limiter.Evictions(); ev < 40 {
			t.Errorf("identity evictions: got %d, want at least 40", ev)
		}
		time.Sleep(ratelimit.DefaultIdleTTL + time.Second)
		if err := e.hello(t, "late"); err != nil {
			t.Fatalf("late subject: %v", err)
		}
		if _, ids := e.limiter.Keys(); ids != 1 {
			t.Errorf("identity keys after the idle TTL: got %d, want 1", ids)
		}
	})
}

func TestDefaults(t *testing.T) {
	o := ratelimit.New(ratelimit.Options{}).Options()
	tests := []struct {
		name      string
		got, want any
	}{
		{"PerPeer", o.PerPeer, ratelimit.Rate{PerSecond: 100, Burst: 200}},
		{"Unary", o.Unary, ratelimit.Rate{PerSecond: 10, Burst: 20}},
		{"Transfer", o.Transfer, ratelimit.Rate{PerSecond: 1, Burst: 5}},
		{"MaxConcurrentTransfers", o.MaxConcurrentTransfers, 4},
		{"Bandwidth", o.Bandwidth, int64(50 << 20)},
		{"BandwidthBurst", o.BandwidthBurst, 4 << 20},
		{"MaxKeys", o.MaxKeys, 100_000},
		{"IdleTTL", o.IdleTTL, 10 * time.Minute},
		{"IPv6Prefix", o.IPv6Prefix, 64},
		{"MaxPublicStreamsPerPeer", o.MaxPublicStreamsPerPeer, 16},
		{"MaxPublicStreams", o.MaxPublicStreams, 1024},
		{"TrustedProxies", len(o.TrustedProxies), 0},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("default %s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}

func TestEvictionKeepsIdentitiesWithTransfersInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := start(t, ratelimit.Options{PerPeer: off, Transfer: off, MaxKeys: 2, MaxConcurrentTransfers: 1})
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		inFlight := openUpload(t, e, metadata.AppendToOutgoingContext(ctx,
			"authorization", "Bearer "+e.key.Token(t, "alice", "files:write")))
		synctest.Wait()
		// Crowd the table, then wait past the idle TTL: neither may forget
		// alice's in-flight transfer and reset her cap.
		for i := range 10 {
			if err := e.hello(t, fmt.Sprintf("crowd-%d", i)); err != nil {
				t.Fatalf("crowd %d: %v", i, err)
			}
		}
		time.Sleep(ratelimit.DefaultIdleTTL + time.Second)
		if err := e.hello(t, "late"); err != nil {
			t.Fatalf("late subject: %v", err)
		}
		again := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+e.key.Token(t, "alice", "files:write"))
		_, err := openUpload(t, e, again).CloseAndRecv()
		wantExhausted(t, err, "too many concurrent transfers", time.Second)
		if _, err := inFlight.CloseAndRecv(); err != nil {
			t.Fatalf("finish the in-flight upload: %v", err)
		}
	})
}
