package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/greeter/greeter/proto/greeterpb"
)

// faultBearer sends a bearer token with every call, over TLS only.
type faultBearer string

func (b faultBearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (faultBearer) RequireTransportSecurity() bool { return true }

// faultTLS is a TLS 1.3 client configuration trusting the CA in caFile.
func faultTLS(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s holds no certificate", caFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS13}
}

// faultDial returns a gRPC connection to addr over TLS trusting caFile,
// sending token; it is closed when the test ends.
func faultDial(t *testing.T, addr, caFile, token string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(faultTLS(t, caFile))),
		grpc.WithPerRPCCredentials(faultBearer(token)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// conn dials the rig's server with the dev CA and dev token.
func (r *faultRig) conn() *grpc.ClientConn {
	r.t.Helper()
	token, err := os.ReadFile(filepath.Join(r.state, "token"))
	if err != nil {
		r.t.Fatal(err)
	}
	return faultDial(r.t, r.srv.Addr, filepath.Join(r.state, "ca.pem"), strings.TrimSpace(string(token)))
}

// faultCtx is a context bounded by faultWait.
func faultCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), faultWait)
	t.Cleanup(cancel)
	return ctx
}

// faultUpload uploads data as name over a plain (non-resumable) stream,
// declaring size and sha256, and checks the server's answer.
func faultUpload(ctx context.Context, c greeterpb.GreeterClient, name string, data []byte) error {
	st, err := faultBeginUpload(ctx, c, name, data)
	if err != nil {
		return err
	}
	return faultFinishUpload(st, data)
}

func faultBeginUpload(ctx context.Context, c greeterpb.GreeterClient, name string, data []byte) (greeterpb.Greeter_UploadFileClient, error) {
	st, err := c.UploadFile(ctx)
	if err != nil {
		return nil, err
	}
	size := int64(len(data))
	md := &greeterpb.MetaData{Filename: name, Size: &size, Sha256: faultSum(data)}
	if err := st.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_Metadata{Metadata: md}}); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return st, nil
}

// faultFinishUpload sends data in 64 KiB chunks and waits for the answer.
func faultFinishUpload(st greeterpb.Greeter_UploadFileClient, data []byte) error {
	for chunk := range slices.Chunk(data, 64<<10) {
		err := st.Send(&greeterpb.UploadFileRequest{Request: &greeterpb.UploadFileRequest_ChunkData{ChunkData: chunk}})
		if errors.Is(err, io.EOF) {
			break // the server ended the stream; CloseAndRecv says why
		}
		if err != nil {
			return err
		}
	}
	resp, err := st.CloseAndRecv()
	if err != nil {
		return err
	}
	if resp.GetSha256() != faultSum(data) || resp.GetSize() != int64(len(data)) {
		return fmt.Errorf("the server stored %d bytes with sha256 %s, want %d bytes with %s", resp.GetSize(), resp.GetSha256(), len(data), faultSum(data))
	}
	return nil
}

// waitHealth waits, watching grpc.health.v1, until both the server ("")
// and "Greeter" report want, and checks that a unary Check agrees.
func waitHealth(t *testing.T, conn *grpc.ClientConn, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", "Greeter"} {
		ctx, cancel := context.WithTimeout(t.Context(), faultWait)
		w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil {
			cancel()
			t.Fatalf("health Watch(%q): %v", svc, err)
		}
		var last healthpb.HealthCheckResponse_ServingStatus
		for last != want {
			resp, err := w.Recv()
			if err != nil {
				cancel()
				t.Fatalf("health Watch(%q) while waiting for %v (last %v): %v", svc, want, last, err)
			}
			last = resp.GetStatus()
		}
		cancel()
		resp, err := hc.Check(faultCtx(t), &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != want {
			t.Fatalf("health Check(%q) = %v, %v; Watch said %v", svc, resp.GetStatus(), err, want)
		}
	}
}
