package ratelimit

import (
	"context"
	"fmt"

	"github.com/greeter/greeter/middleware"
)

// PublicStreamsName is the name of the public stream cap in a chain.
const PublicStreamsName = "public-streams"

// PublicStreams returns the plugin that caps the concurrent streaming RPCs
// of methods served without authentication (health Watch, server
// reflection): at most Options.MaxPublicStreamsPerPeer per peer and
// Options.MaxPublicStreams in all. A stream over either cap ends at once with
// ResourceExhausted; a held stream frees its place when it ends. Restrict the
// plugin to the public methods with middleware.Only and place it after
// PerPeer, whose peer key it counts under. It supplies no unary interceptor:
// a unary call holds nothing.
func (l *Limiter) PublicStreams() middleware.Plugin {
	perPeer, total := l.o.MaxPublicStreamsPerPeer, l.o.MaxPublicStreams
	peerMsg := fmt.Sprintf("too many open health or reflection streams from this address (at most %d)", perPeer)
	totalMsg := fmt.Sprintf("too many open health or reflection streams on this server (at most %d)", total)
	f := func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		key := peerKey(ctx)
		switch l.acquirePublic(key) {
		case ReasonPublicStream:
			return l.reject(ctx, ReasonPublicStream, peerMsg, concurrencyRetryDelay)
		case ReasonPublicStreamGlobal:
			return l.reject(ctx, ReasonPublicStreamGlobal, totalMsg, concurrencyRetryDelay)
		}
		defer l.releasePublic(key)
		return next(ctx)
	}
	return middleware.Plugin{Name: PublicStreamsName, Stream: middleware.FromFunc(PublicStreamsName, f).Stream}
}

// OpenPublicStreams returns how many public streams are open, for a gauge.
func (l *Limiter) OpenPublicStreams() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.publicStreams
}

// acquirePublic takes a public stream place for key. It returns "" when it
// did, else the Reason of the cap that refused. The per-peer table holds only
// keys with open streams, so it never holds more than MaxPublicStreams keys
// (or, with that cap off, more than the open streams).
func (l *Limiter) acquirePublic(key string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if limit := l.o.MaxPublicStreamsPerPeer; limit > 0 && l.publicPerPeer[key] >= limit {
		return ReasonPublicStream
	}
	if limit := l.o.MaxPublicStreams; limit > 0 && l.publicStreams >= limit {
		return ReasonPublicStreamGlobal
	}
	l.publicStreams++
	l.publicPerPeer[key]++
	return ""
}

func (l *Limiter) releasePublic(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.publicStreams--
	if n := l.publicPerPeer[key] - 1; n > 0 {
		l.publicPerPeer[key] = n
	} else {
		delete(l.publicPerPeer, key)
	}
}
