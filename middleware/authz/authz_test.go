package authz_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/identity"
	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/middleware/authz"
	"github.com/greeter/greeter/middleware/internal/greetertest"
	"github.com/greeter/greeter/proto/greeterpb"
)

// as gives every call the identity with scopes; nil scopes means no
// identity at all.
func as(scopes []string) middleware.Plugin {
	return middleware.FromFunc("as", func(ctx context.Context, _ *middleware.Call, next middleware.Next) error {
		if scopes == nil {
			return next(ctx)
		}
		return next(identity.NewContext(ctx, identity.Identity{Kind: identity.KindJWT, Issuer: "idp", Name: "alice", Scopes: scopes}))
	})
}

func invoke(ctx context.Context, cc *grpc.ClientConn, method string) error {
	c := greeterpb.NewGreeterClient(cc)
	m := &greeterpb.MetaData{Filename: "f", Limit: 1}
	var err error
	switch method {
	case "SayHello":
		_, err = c.SayHello(ctx, &greeterpb.HelloRequest{})
	case "UploadFile":
		var s grpc.ClientStreamingClient[greeterpb.UploadFileRequest, greeterpb.StringResponse]
		if s, err = c.UploadFile(ctx); err == nil {
			_, err = s.CloseAndRecv()
		}
	case "DownloadFile":
		var s grpc.ServerStreamingClient[greeterpb.FileResponse]
		if s, err = c.DownloadFile(ctx, m); err == nil {
			for err == nil {
				_, err = s.Recv()
			}
			if errors.Is(err, io.EOF) {
				err = nil
			}
		}
	case "ListFiles":
		_, err = c.ListFiles(ctx, &greeterpb.ListFilesRequest{})
	case "StatFile":
		_, err = c.StatFile(ctx, m)
	case "DeleteFile":
		_, err = c.DeleteFile(ctx, m)
	case "QueryUpload":
		_, err = c.QueryUpload(ctx, &greeterpb.QueryUploadRequest{})
	}
	return err
}

func TestDefaultPolicy(t *testing.T) {
	all := authz.AllScopes()
	read := []string{authz.ScopeRead}
	write := []string{authz.ScopeWrite}
	del := []string{authz.ScopeDelete}
	none := []string{}
	tests := []struct {
		method   string
		scopes   []string
		wantCode codes.Code
		wantMsg  string
	}{
		{"SayHello", none, codes.OK, ""},
		{"SayHello", nil, codes.Unauthenticated, "caller is not authenticated"},
		{"UploadFile", write, codes.OK, ""},
		{"UploadFile", read, codes.PermissionDenied, "missing scope files:write"},
		{"DownloadFile", read, codes.OK, ""},
		{"DownloadFile", write, codes.PermissionDenied, "missing scope files:read"},
		{"ListFiles", read, codes.OK, ""},
		{"ListFiles", del, codes.PermissionDenied, "missing scope files:read"},
		{"StatFile", read, codes.OK, ""},
		{"StatFile", none, codes.PermissionDenied, "missing scope files:read"},
		{"QueryUpload", read, codes.OK, ""},
		{"QueryUpload", write, codes.PermissionDenied, "missing scope files:read"},
		{"DeleteFile", del, codes.OK, ""},
		{"DeleteFile", append(read, authz.ScopeWrite), codes.PermissionDenied, "missing scope files:delete"},
		{"DeleteFile", all, codes.OK, ""},
		{"DeleteFile", nil, codes.Unauthenticated, "caller is not authenticated"},
	}
	for _, tc := range tests {
		t.Run(tc.method, func(t *testing.T) {
			cc := greetertest.Start(t, middleware.NewChain(as(tc.scopes), authz.New(authz.Options{})).ServerOptions())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st := status.Convert(invoke(ctx, cc, tc.method))
			if st.Code() != tc.wantCode || (tc.wantCode != codes.OK && st.Message() != tc.wantMsg) {
				t.Errorf("%s with scopes %v: got %v %q, want %v %q", tc.method, tc.scopes, st.Code(), st.Message(), tc.wantCode, tc.wantMsg)
			}
		})
	}
}

func TestUnlistedMethodIsDenied(t *testing.T) {
	var (
		mu     sync.Mutex
		denied []string
	)
	policy := authz.DefaultPolicy()
	delete(policy, "/Greeter/SayHello")
	p := authz.New(authz.Options{Policy: policy, OnDeny: func(_ context.Context, method, key string) {
		mu.Lock()
		defer mu.Unlock()
		denied = append(denied, key+" "+method)
	}})
	cc := greetertest.Start(t, middleware.NewChain(as(authz.AllScopes()), p).ServerOptions())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := status.Convert(invoke(ctx, cc, "SayHello"))
	if st.Code() != codes.PermissionDenied || st.Message() != "method not allowed" {
		t.Errorf("unlisted method: got %v %q, want PermissionDenied %q", st.Code(), st.Message(), "method not allowed")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(denied) != 1 || denied[0] != "jwt:idp:alice /Greeter/SayHello" {
		t.Errorf("OnDeny calls: got %q, want [%q]", denied, "jwt:idp:alice /Greeter/SayHello")
	}
}
