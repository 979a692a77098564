package identity_test

import (
	"context"
	"sync"
	"testing"

	"github.com/greeter/greeter/identity"
)

func TestObservedSeesIdentitySetBelow(t *testing.T) {
	alice := identity.Identity{Kind: identity.KindJWT, Issuer: "idp", Name: "alice"}
	tests := []struct {
		name    string
		build   func() (outer, inner context.Context)
		wantOK  bool
		wantKey string
	}{
		{"no observer", func() (context.Context, context.Context) {
			outer := context.Background()
			return outer, identity.NewContext(outer, alice)
		}, false, ""},
		{"observer above NewContext", func() (context.Context, context.Context) {
			outer := identity.WithObserver(context.Background())
			return outer, identity.NewContext(outer, alice)
		}, true, "jwt:idp:alice"},
		{"nested observers share one record", func() (context.Context, context.Context) {
			outer := identity.WithObserver(context.Background())
			inner := identity.WithObserver(context.WithValue(outer, struct{}{}, 1))
			return outer, identity.NewContext(inner, alice)
		}, true, "jwt:idp:alice"},
		{"observer but no identity", func() (context.Context, context.Context) {
			outer := identity.WithObserver(context.Background())
			return outer, outer
		}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outer, inner := tc.build()
			got, ok := identity.Observed(outer)
			if ok != tc.wantOK || got.Key() != tc.wantKey {
				t.Errorf("Observed(outer): got %q, %v, want %q, %v", got.Key(), ok, tc.wantKey, tc.wantOK)
			}
			if id, ok := identity.Observed(inner); tc.wantKey != "" && (!ok || id.Key() != tc.wantKey) {
				t.Errorf("Observed(inner): got %q, %v, want %q, true", id.Key(), ok, tc.wantKey)
			}
		})
	}
}

func TestObservedIsSafeForConcurrentUse(t *testing.T) {
	outer := identity.WithObserver(context.Background())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			identity.NewContext(outer, identity.Identity{Kind: identity.KindAnonymous, Name: "x"})
			identity.Observed(outer)
		})
	}
	wg.Wait()
	if id, ok := identity.Observed(outer); !ok || id.Key() != "anonymous:x" {
		t.Errorf("Observed: got %q, %v, want %q, true", id.Key(), ok, "anonymous:x")
	}
}

// TestKeyKeepsKindsApart is R1: the same name established by different
// kinds of credential gives different owner keys, and an identity that
// names nothing gives no key.
func TestKeyKeepsKindsApart(t *testing.T) {
	const billing = "spiffe://greeter.local/svc/billing"
	tests := []struct {
		id   identity.Identity
		want string
	}{
		{identity.Identity{Kind: identity.KindJWT, Issuer: "greeterd", Name: billing}, "jwt:greeterd:" + billing},
		{identity.Identity{Kind: identity.KindX509URI, Name: billing}, "x509-uri:" + billing},
		{identity.Identity{Kind: identity.KindX509DNS, Name: "billing.internal"}, "x509-dns:billing.internal"},
		{identity.Identity{Kind: identity.KindX509CN, Name: billing}, "x509-cn:" + billing},
		{identity.Identity{Kind: identity.KindAnonymous, Name: "anonymous"}, "anonymous:anonymous"},
		// The issuer belongs to tokens only.
		{identity.Identity{Kind: identity.KindX509URI, Issuer: "greeterd", Name: billing}, "x509-uri:" + billing},
		{identity.Identity{Kind: identity.KindJWT, Name: "ada"}, ""},
		{identity.Identity{Kind: identity.KindJWT, Issuer: "greeterd"}, ""},
		{identity.Identity{Name: "ada"}, ""},
		{identity.Identity{Kind: "token", Name: "ada"}, ""},
		{identity.Identity{}, ""},
	}
	seen := map[string]identity.Identity{}
	for _, tc := range tests {
		got := tc.id.Key()
		if got != tc.want {
			t.Errorf("%+v.Key() = %q, want %q", tc.id, got, tc.want)
		}
		if s := tc.id.String(); s != got {
			t.Errorf("%+v.String() = %q, want Key() %q", tc.id, s, got)
		}
		if prev, dup := seen[got]; dup && got != "" && prev.Kind != tc.id.Kind {
			t.Errorf("%+v and %+v share the key %q", prev, tc.id, got)
		}
		seen[got] = tc.id
	}
}
