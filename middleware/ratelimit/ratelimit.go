// Package ratelimit limits how much each caller may ask of the server.
//
// One Limiter supplies four plugins:
//
//   - RealIP finds the client's address behind trusted proxies.
//   - PerPeer runs before authentication and limits RPCs per peer, so that
//     a flood of garbage tokens is refused before any signature is checked.
//   - PublicStreams caps the concurrent streams of the methods served
//     without authentication (health Watch, reflection), per peer and in
//     total, so that held streams cannot pile up.
//   - PerIdentity runs after authentication and authorization and, per
//     caller identity, limits the rate of unary calls, the rate at which
//     transfers (streaming RPCs) start, the number of concurrent transfers,
//     and the bytes per second a caller's transfers may move. Bandwidth is
//     throttled, never refused: RecvMsg and SendMsg wait for tokens.
//
// A peer is its IP address, an IPv6 one cut to a prefix (PeerKey), so that
// rotating addresses inside one /64 buys no fresh budget. LimitListener caps
// the connections per peer with the same key.
//
// Rejections are ResourceExhausted with an errdetails.RetryInfo saying when
// a retry can succeed, and the same delay in the "grpc-retry-pushback-ms"
// trailer that grpc-go's built-in retry honours. Streams are checked when
// they start, before the handler reads any message.
//
// The limiter tables hold at most Options.MaxKeys keys each and forget keys
// idle for Options.IdleTTL, so a flood of distinct subjects or addresses
// cannot grow memory without bound. An identity with transfers in flight is
// never forgotten, so the concurrency cap cannot be reset by eviction.
//
// The per-identity limits keep their state in a coordination.Limits: by
// default one in this process (N replicas allow N times the rate), or one
// shared between replicas (coordination/redislimit), which PerIdentity uses
// the same way without knowing which it has. The per-peer limit and the
// public stream cap are always local: they shed load before any work is
// done, and a shared store consulted for every unauthenticated call would
// make that store the target of the flood they guard against.
//
// It is written here rather than with go-grpc-middleware's ratelimit
// because that package calls its Limiter once, when a call starts: it can
// neither throttle the bytes of a stream nor free a concurrency slot when the
// stream ends, and it rejects with a message naming the method and no
// RetryInfo or pushback trailer.
package ratelimit

import (
	"context"
	"math"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/greeter/greeter/coordination"
	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/internal/lru"
	"github.com/greeter/greeter/middleware"
)

// Plugin names in a chain.
const (
	PeerName     = "ratelimit-peer"
	IdentityName = "ratelimit"
)

// Reasons passed to Options.OnReject.
const (
	ReasonPeer        = "peer"
	ReasonUnary       = "unary"
	ReasonTransfer    = "transfer"
	ReasonConcurrency = "concurrency"
	// ReasonPublicStream: a peer had too many public streams open.
	ReasonPublicStream = "public-stream"
	// ReasonPublicStreamGlobal: the server had too many public streams open.
	ReasonPublicStreamGlobal = "public-stream-global"
)

// Defaults applied to zero fields of Options.
const (
	DefaultPeerPerSecond          = 100
	DefaultPeerBurst              = 200
	DefaultUnaryPerSecond         = 10
	DefaultUnaryBurst             = 20
	DefaultTransferPerSecond      = 1
	DefaultTransferBurst          = 5
	DefaultMaxConcurrentTransfers = 4
	DefaultBandwidth              = 50 << 20 // bytes per second
	DefaultBandwidthBurst         = 4 << 20  // bytes; at least 2 × the 2 MiB max message
	DefaultMaxKeys                = 100_000
	DefaultIdleTTL                = 10 * time.Minute
	DefaultPublicStreamsPerPeer   = 16
	DefaultPublicStreams          = 1024
	// concurrencyRetryDelay is the RetryInfo delay suggested when the
	// concurrency cap refuses a transfer; the real wait is unknowable.
	concurrencyRetryDelay = time.Second
)

// Rate is a token bucket: PerSecond tokens are added each second, up to
// Burst. A zero PerSecond or Burst takes the default; a negative PerSecond
// switches the limit off.
type Rate struct {
	PerSecond float64
	Burst     int
}

// Options configure a Limiter. Zero fields take the documented defaults; a
// negative value switches that limit off.
type Options struct {
	// PerPeer limits RPCs of any kind per peer (see PeerKey), before
	// authentication. Default 100/s, burst 200.
	PerPeer Rate
	// Unary limits unary RPCs per identity. Default 10/s, burst 20.
	Unary Rate
	// Transfer limits how often an identity may start a streaming RPC
	// (upload or download). Default 1/s, burst 5.
	Transfer Rate
	// MaxConcurrentTransfers caps the streaming RPCs an identity may have
	// in flight. Default 4.
	MaxConcurrentTransfers int
	// Bandwidth limits the message bytes per second (received and sent
	// together, measured with proto.Size) of one identity's streaming RPCs.
	// Default 50 MiB/s.
	Bandwidth int64
	// BandwidthBurst is the bandwidth bucket size in bytes. Default 4 MiB.
	// A message larger than the burst is waited for in burst-sized parts.
	BandwidthBurst int
	// MaxKeys caps each limiter table (peers, per-identity keys).
	// Default 100 000.
	MaxKeys int
	// IdleTTL is how long an unused key is kept. Default 10 minutes.
	IdleTTL time.Duration
	// IPv6Prefix is the prefix length that keys an IPv6 peer (see PeerKey).
	// Default 64; more than 128 means 128.
	IPv6Prefix int
	// TrustedProxies are the networks of proxies whose X-Forwarded-For
	// header names the client (see RealIP). Default none: the peer's own
	// address is the client's.
	TrustedProxies []netip.Prefix
	// MaxPublicStreamsPerPeer caps the concurrent streams of public methods
	// one peer may hold. Default 16.
	MaxPublicStreamsPerPeer int
	// MaxPublicStreams caps the concurrent streams of public methods of all
	// peers together. Default 1024.
	MaxPublicStreams int
	// Limits holds the per-identity limits' state. Nil means a
	// coordination.Local bounded by MaxKeys and IdleTTL, in this process;
	// a redislimit.Limits shares the limits between replicas.
	Limits coordination.Limits
	// OnReject, if set, is called for every rejected RPC with the RPC's
	// context and one of the Reason constants, for example to count
	// rejections; record metrics with ctx so they carry the RPC's trace.
	OnReject func(ctx context.Context, reason string)
}

func (o Options) withDefaults() Options {
	o.PerPeer = o.PerPeer.withDefaults(DefaultPeerPerSecond, DefaultPeerBurst)
	o.Unary = o.Unary.withDefaults(DefaultUnaryPerSecond, DefaultUnaryBurst)
	o.Transfer = o.Transfer.withDefaults(DefaultTransferPerSecond, DefaultTransferBurst)
	if o.MaxConcurrentTransfers == 0 {
		o.MaxConcurrentTransfers = DefaultMaxConcurrentTransfers
	}
	if o.Bandwidth == 0 {
		o.Bandwidth = DefaultBandwidth
	}
	if o.BandwidthBurst <= 0 {
		o.BandwidthBurst = DefaultBandwidthBurst
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = DefaultMaxKeys
	}
	if o.IdleTTL <= 0 {
		o.IdleTTL = DefaultIdleTTL
	}
	if o.IPv6Prefix <= 0 {
		o.IPv6Prefix = DefaultIPv6Prefix
	}
	o.IPv6Prefix = min(o.IPv6Prefix, 128)
	o.TrustedProxies = append([]netip.Prefix(nil), o.TrustedProxies...)
	if o.MaxPublicStreamsPerPeer == 0 {
		o.MaxPublicStreamsPerPeer = DefaultPublicStreamsPerPeer
	}
	if o.MaxPublicStreams == 0 {
		o.MaxPublicStreams = DefaultPublicStreams
	}
	return o
}

func (r Rate) withDefaults(perSecond float64, burst int) Rate {
	if r.PerSecond == 0 {
		r.PerSecond = perSecond
	}
	if r.Burst <= 0 {
		r.Burst = burst
	}
	return r
}

func (r Rate) limiter() *rate.Limiter {
	if r.PerSecond < 0 {
		return rate.NewLimiter(rate.Inf, r.Burst)
	}
	return rate.NewLimiter(rate.Limit(r.PerSecond), r.Burst)
}

func (r Rate) limit() coordination.Limit {
	return coordination.Limit{PerSecond: r.PerSecond, Burst: r.Burst}
}

// Limiter holds the per-peer limiter table, the public stream counts and
// the per-identity limits. It is safe for concurrent use.
type Limiter struct {
	o      Options
	peers  *lru.Cache[string, *rate.Limiter]
	limits coordination.Limits
	local  *coordination.Local // limits, when New built them

	mu            sync.Mutex
	publicStreams int            // open public streams, all peers
	publicPerPeer map[string]int // open public streams per peer key; no zero entries
}

// New returns a Limiter with o's limits.
func New(o Options) *Limiter {
	o = o.withDefaults()
	l := &Limiter{
		o:             o,
		peers:         lru.New[string, *rate.Limiter](o.MaxKeys, o.IdleTTL, nil),
		limits:        o.Limits,
		publicPerPeer: map[string]int{},
	}
	if l.limits == nil {
		l.local = coordination.NewLocal(coordination.LocalOptions{MaxKeys: o.MaxKeys, IdleTTL: o.IdleTTL})
		l.limits = l.local
	}
	return l
}

// Options returns the limits in force, with defaults applied.
func (l *Limiter) Options() Options { return l.o }

// Keys returns the number of peer and per-identity keys held in this
// process, for a gauge; identities is 0 when Options.Limits was given.
func (l *Limiter) Keys() (peers, identities int) {
	if l.local != nil {
		identities = l.local.Len()
	}
	return l.peers.Len(), identities
}

// Evictions returns how many peer and per-identity keys were evicted in
// this process; identities is 0 when Options.Limits was given.
func (l *Limiter) Evictions() (peers, identities uint64) {
	if l.local != nil {
		identities = l.local.Evictions()
	}
	return l.peers.Evictions(), identities
}

// PerPeer returns the plugin that limits RPCs per peer: the client's IP
// address (as RealIP found it, if it ran before), an IPv6 one cut to
// Options.IPv6Prefix. Later plugins of this Limiter key the caller the same
// way. Place it before authentication.
func (l *Limiter) PerPeer() middleware.Plugin {
	return middleware.FromFunc(PeerName, func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		ctx, key := l.withPeerKey(ctx)
		now := time.Now()
		lim := l.peers.GetOrAdd(key, now, l.o.PerPeer.limiter)
		if d, ok := take(lim, now); !ok {
			return l.reject(ctx, ReasonPeer, "rate limit exceeded for this address", d)
		}
		return next(ctx)
	})
}

// PerIdentity returns the plugin that applies the per-identity limits. Place
// it after authentication and authorization. A call without an identity (a
// method exempted from authentication) is keyed by its peer address.
func (l *Limiter) PerIdentity() middleware.Plugin {
	return middleware.FromFunc(IdentityName, func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		id := identityKey(ctx)
		if !call.IsStream() {
			if l.o.Unary.PerSecond >= 0 {
				if ok, d := l.limits.Allow(ctx, "unary:"+id, l.o.Unary.limit()); !ok {
					return l.reject(ctx, ReasonUnary, "rate limit exceeded", d)
				}
			}
			return next(ctx)
		}
		if limit := l.o.MaxConcurrentTransfers; limit > 0 {
			release, ok := l.limits.Acquire(ctx, "transfers:"+id, limit)
			if !ok {
				return l.reject(ctx, ReasonConcurrency, "too many concurrent transfers", concurrencyRetryDelay)
			}
			defer release()
		}
		if l.o.Transfer.PerSecond >= 0 {
			if ok, d := l.limits.Allow(ctx, "transfer:"+id, l.o.Transfer.limit()); !ok {
				return l.reject(ctx, ReasonTransfer, "transfer rate limit exceeded", d)
			}
		}
		if l.o.Bandwidth > 0 {
			key, limit := "bytes:"+id, coordination.Limit{PerSecond: float64(l.o.Bandwidth), Burst: l.o.BandwidthBurst}
			hook := func(ctx context.Context, m any) error {
				if pm, ok := m.(proto.Message); ok {
					return waitErr(ctx, l.limits.Wait(ctx, key, limit, proto.Size(pm)))
				}
				return nil
			}
			call.OnRecv(hook)
			call.OnSend(hook)
		}
		return next(ctx)
	})
}

// take takes one token if one is available now; otherwise it reports how
// long until one will be.
func take(lim *rate.Limiter, now time.Time) (time.Duration, bool) {
	r := lim.ReserveN(now, 1)
	if !r.OK() {
		return time.Second, false
	}
	d := r.DelayFrom(now)
	if d <= 0 {
		return 0, true
	}
	r.CancelAt(now)
	return d, false
}

// waitErr turns the error of a bandwidth wait into a status error.
func waitErr(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	}
	// coordination.ErrWouldExceedDeadline: the wait cannot finish in time.
	return status.Error(codes.DeadlineExceeded, "bandwidth limit would exceed the deadline")
}

func (l *Limiter) reject(ctx context.Context, reason, msg string, delay time.Duration) error {
	if l.o.OnReject != nil {
		l.o.OnReject(ctx, reason)
	}
	return Exhausted(ctx, msg, delay)
}

// Exhausted returns a ResourceExhausted status error with message msg and an
// errdetails.RetryInfo of delay, and sets the "grpc-retry-pushback-ms"
// trailer on the RPC in ctx. Other server code that sheds load can use it to
// answer the same way.
func Exhausted(ctx context.Context, msg string, delay time.Duration) error {
	delay = max(delay, time.Millisecond)
	ms := int64(math.Ceil(float64(delay) / float64(time.Millisecond)))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("grpc-retry-pushback-ms", strconv.FormatInt(ms, 10)))
	st := status.New(codes.ResourceExhausted, msg)
	if ds, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)}); err == nil {
		st = ds
	}
	return st.Err()
}

// RetryDelay returns the RetryInfo delay carried by err, if any.
func RetryDelay(err error) (time.Duration, bool) {
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// peerKey returns the peer key PerPeer stored in ctx or, without PerPeer in
// the chain, the key of the client's address under DefaultIPv6Prefix.
func peerKey(ctx context.Context) string {
	if key, ok := ctx.Value(peerKeyCtx{}).(string); ok {
		return key
	}
	return keyOf(ctx, DefaultIPv6Prefix)
}

func identityKey(ctx context.Context) string {
	// Typed keys (jwt:..., x509-uri:..., anonymous:...) never start with
	// "peer:", so an identity never shares a bucket with a peer address.
	if id, ok := identity.FromContext(ctx); ok {
		if key := id.Key(); key != "" {
			return key
		}
	}
	return "peer:" + peerKey(ctx)
}
