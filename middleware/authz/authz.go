// Package authz decides, from the caller's scopes, whether it may call a
// method.
//
// Every method must appear in the policy: a method that is not listed is
// denied, so a newly added RPC is unreachable until someone decides which
// scope it needs. A caller lacking the method's scope gets PermissionDenied
// "missing scope S". A call that reaches this plugin without an identity (a
// chain built without authentication in front) gets Unauthenticated.
//
// Per-object decisions (whose file this is) are the service's: it uses
// identity.Identity.Key as the owner.
package authz

import (
	"context"
	"maps"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware"
	pb "github.com/greeter/greeter/proto/greeterpb"
)

// Name is the plugin's name in a chain.
const Name = "authz"

// Scopes granted by greeterd tokens.
const (
	ScopeRead   = "files:read"
	ScopeWrite  = "files:write"
	ScopeDelete = "files:delete"
)

// AuthenticatedOnly marks a method in a Policy that any authenticated caller
// may call, whatever its scopes.
const AuthenticatedOnly = ""

var (
	errNoIdentity = status.Error(codes.Unauthenticated, "caller is not authenticated")
	errNotAllowed = status.Error(codes.PermissionDenied, "method not allowed")
)

// Policy maps full method names to the scope they require, or to
// AuthenticatedOnly.
type Policy map[string]string

// AllScopes returns every scope DefaultPolicy uses, for callers that must be
// granted everything (the anonymous owner when authentication is off).
func AllScopes() []string {
	return []string{ScopeRead, ScopeWrite, ScopeDelete}
}

// DefaultPolicy returns greeterd's policy: files:read for DownloadFile,
// ListFiles, StatFile, QueryUpload and GetUsage; files:write for UploadFile;
// files:delete for DeleteFile; and authentication only for SayHello.
func DefaultPolicy() Policy {
	return Policy{
		pb.Greeter_SayHello_FullMethodName:     AuthenticatedOnly,
		pb.Greeter_UploadFile_FullMethodName:   ScopeWrite,
		pb.Greeter_DownloadFile_FullMethodName: ScopeRead,
		pb.Greeter_ListFiles_FullMethodName:    ScopeRead,
		pb.Greeter_StatFile_FullMethodName:     ScopeRead,
		pb.Greeter_QueryUpload_FullMethodName:  ScopeRead,
		pb.Greeter_GetUsage_FullMethodName:     ScopeRead,
		pb.Greeter_DeleteFile_FullMethodName:   ScopeDelete,
	}
}

// Options configure the plugin.
type Options struct {
	// Policy maps methods to scopes. Nil means DefaultPolicy. Methods served
	// without authentication (health, reflection) must be exempted with
	// middleware.Skip, not listed here.
	Policy Policy
	// OnDeny, if set, is called for every denied call with the method and
	// the caller's typed identity key (identity.Identity.Key; empty when
	// there was no identity), for example to log "authz_deny" or count
	// denials.
	OnDeny func(ctx context.Context, fullMethod, identityKey string)
}

// New returns the authorization plugin.
func New(o Options) middleware.Plugin {
	policy := maps.Clone(o.Policy)
	if policy == nil {
		policy = DefaultPolicy()
	}
	denied := make(map[string]error, len(policy))
	for _, scope := range policy {
		if scope != AuthenticatedOnly {
			denied[scope] = status.Error(codes.PermissionDenied, "missing scope "+scope)
		}
	}
	deny := func(ctx context.Context, method, key string, err error) error {
		if o.OnDeny != nil {
			o.OnDeny(ctx, method, key)
		}
		return err
	}
	return middleware.FromFunc(Name, func(ctx context.Context, call *middleware.Call, next middleware.Next) error {
		id, ok := identity.FromContext(ctx)
		if !ok {
			return deny(ctx, call.FullMethod, "", errNoIdentity)
		}
		scope, listed := policy[call.FullMethod]
		if !listed {
			return deny(ctx, call.FullMethod, id.Key(), errNotAllowed)
		}
		if scope != AuthenticatedOnly && !id.HasScope(scope) {
			return deny(ctx, call.FullMethod, id.Key(), denied[scope])
		}
		return next(ctx)
	})
}
