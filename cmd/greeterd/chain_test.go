package main

import (
	"errors"
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

// TestServiceDefaultOwnerFailsClosed is item 11a of issue 12: the service
// gets a default owner only when authentication is off, so with --auth=jwt
// a call without an identity is Unauthenticated, never a shared owner's.
func TestServiceDefaultOwnerFailsClosed(t *testing.T) {
	tests := []struct {
		auth, security, want string
	}{
		{"jwt", "tls", ""},
		{"", "mtls-request", ""},
		{"", "dev", ""},
		{"jwt", "plaintext", ""},
		{"none", "tls", "anonymous"},
		{"", "plaintext", "anonymous"},
	}
	for _, tc := range tests {
		c := chainConfig{auth: tc.auth}
		if got := c.serviceDefaultOwner(&security{mode: tc.security}, "anonymous"); got != tc.want {
			t.Errorf("--auth=%q, security %s: service default owner %q, want %q", tc.auth, tc.security, got, tc.want)
		}
	}
}

// TestLegacyOwnerKey is R1's migration: the untyped owners of an existing
// data directory map to the typed keys their callers have now.
func TestLegacyOwnerKey(t *testing.T) {
	jwt := chainConfig{auth: "jwt", issuer: "https://idp.test", certIdentities: listFlag{
		"spiffe://greeter.local/svc/billing=files:read",
		"x509-cn:batch=files:write",
		"x509-cn:shared.test=files:read",
		"shared.test=files:read",
	}}
	none := chainConfig{auth: "none", certIdentities: jwt.certIdentities}
	tests := []struct {
		c          chainConfig
		owner, key string
	}{
		{jwt, "spiffe://greeter.local/svc/billing", "x509-uri:spiffe://greeter.local/svc/billing"},
		{jwt, "batch", "x509-cn:batch"},
		{jwt, "shared.test", "x509-dns:shared.test"}, // DNS before CN, as in matching
		{jwt, "ada", "jwt:https://idp.test:ada"},
		{none, "anonymous", "anonymous:anonymous"},
		{none, "spiffe://greeter.local/svc/billing", "anonymous:spiffe://greeter.local/svc/billing"},
	}
	for _, tc := range tests {
		key, err := tc.c.legacyOwnerKey(&security{mode: "tls"})
		if err != nil {
			t.Fatal(err)
		}
		if got := key(tc.owner); got != tc.key {
			t.Errorf("--auth=%s: legacy owner %q maps to %q, want %q", tc.c.auth, tc.owner, got, tc.key)
		}
	}
}

// TestCertIdentityFlag is R1: --cert-identity entries are typed and checked
// when greeterd starts.
func TestCertIdentityFlag(t *testing.T) {
	for _, bad := range [][]string{
		{"spiffe://greeter.local/svc/billing"},                          // no scopes part
		{"jwt:greeterd:ada=files:read"},                                 // not a certificate identity
		{"x509-cn:=files:read"},                                         // empty name
		{"a.test=files:read", "x509-dns:A.test=files:write"},            // one identity twice
		{"spiffe://x/y=files:read", "x509-uri:spiffe://x/y=files:read"}, // one identity twice
		{"x509-dns:spiffe://greeter.local/svc/billing=files:read"},      // not a DNS name
	} {
		c := chainConfig{certIdentities: bad}
		var usage usageError
		if _, err := c.certIdentityMap(); !errors.As(err, &usage) {
			t.Errorf("--cert-identity %q: got %v, want a usage error", bad, err)
		}
	}
}

// TestRequireTokenCertMatchNeedsCertificates: the binding flag is a usage
// error where no token could ever pass it.
func TestRequireTokenCertMatchNeedsCertificates(t *testing.T) {
	c := chainConfig{requireBinding: true}
	for _, tc := range []struct {
		mode, security string
		ok             bool
	}{
		{"jwt", "mtls-request", true},
		{"jwt", "dev", true},
		{"jwt", "tls", false},
		{"none", "mtls-require", false},
	} {
		err := c.checkBinding(tc.mode, &security{mode: tc.security})
		if (err == nil) != tc.ok {
			t.Errorf("--auth=%s, security %s: got %v, want ok %v", tc.mode, tc.security, err, tc.ok)
		}
	}
}
