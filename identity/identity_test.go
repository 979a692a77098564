package identity_test

import (
	"context"
	"sync"
	"testing"

	"github.com/greeter/greeter/identity"
)

func TestObservedSeesIdentitySetBelow(t *testing.T) {
	alice := identity.Identity{Subject: "alice", Source: identity.SourceToken}
	tests := []struct {
		name    string
		build   func() (outer, inner context.Context)
		wantOK  bool
		wantSub string
	}{
		{"no observer", func() (context.Context, context.Context) {
			outer := context.Background()
			return outer, identity.NewContext(outer, alice)
		}, false, ""},
		{"observer above NewContext", func() (context.Context, context.Context) {
			outer := identity.WithObserver(context.Background())
			return outer, identity.NewContext(outer, alice)
		}, true, "alice"},
		{"nested observers share one record", func() (context.Context, context.Context) {
			outer := identity.WithObserver(context.Background())
			inner := identity.WithObserver(context.WithValue(outer, struct{}{}, 1))
			return outer, identity.NewContext(inner, alice)
		}, true, "alice"},
		{"observer but no identity", func() (context.Context, context.Context) {
			outer := identity.WithObserver(context.Background())
			return outer, outer
		}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outer, inner := tc.build()
			got, ok := identity.Observed(outer)
			if ok != tc.wantOK || got.Subject != tc.wantSub {
				t.Errorf("Observed(outer): got %q, %v, want %q, %v", got.Subject, ok, tc.wantSub, tc.wantOK)
			}
			if id, ok := identity.Observed(inner); tc.wantSub != "" && (!ok || id.Subject != tc.wantSub) {
				t.Errorf("Observed(inner): got %q, %v, want %q, true", id.Subject, ok, tc.wantSub)
			}
		})
	}
}

func TestObservedIsSafeForConcurrentUse(t *testing.T) {
	outer := identity.WithObserver(context.Background())
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			identity.NewContext(outer, identity.Identity{Subject: "x"})
			identity.Observed(outer)
		})
	}
	wg.Wait()
	if id, ok := identity.Observed(outer); !ok || id.Subject != "x" {
		t.Errorf("Observed: got %q, %v, want %q, true", id.Subject, ok, "x")
	}
}
