package main

import (
	"testing"

	"github.com/greeter/greeter/middleware/ratelimit"
	"github.com/greeter/greeter/telemetry"
)

// TestRateLimitReasonsAreMapped: every reason the limiter reports has a
// label of its own in greeter.ratelimit.rejections, not "other".
func TestRateLimitReasonsAreMapped(t *testing.T) {
	for _, reason := range []string{ratelimit.ReasonPeer, ratelimit.ReasonUnary, ratelimit.ReasonTransfer, ratelimit.ReasonConcurrency} {
		if got := rateLimitReasons[reason]; got == "" || got == telemetry.RateLimitOther {
			t.Errorf("ratelimit reason %q is counted as %q", reason, got)
		}
	}
}
