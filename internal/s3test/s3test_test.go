package s3test_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/greeter/greeter/internal/s3test"
)

func TestStartStopStart(t *testing.T) {
	for _, tt := range []struct {
		name   string
		opts   []s3test.Option
		scheme string
	}{{"http", nil, "http://"}, {"https", []s3test.Option{s3test.WithTLS()}, "https://"}} {
		t.Run(tt.name, func(t *testing.T) {
			srv := s3test.Start(t, tt.opts...)
			if !strings.HasPrefix(srv.Endpoint, tt.scheme) || (tt.scheme == "https://") != (srv.CAFile != "") {
				t.Fatalf("Endpoint %q, CAFile %q", srv.Endpoint, srv.CAFile)
			}
			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			c := srv.Client()
			if _, err := c.PutObject(ctx, srv.Bucket, "k", strings.NewReader("v"), 1, "", "", minio.PutObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			srv.Stop()
			srv.Stop() // twice is fine
			if _, err := c.StatObject(ctx, srv.Bucket, "k", minio.StatObjectOptions{}); err == nil {
				t.Fatal("StatObject succeeded while the server was stopped")
			}
			if err := srv.Start(); err != nil {
				t.Fatal(err)
			}
			if _, err := c.StatObject(ctx, srv.Bucket, "k", minio.StatObjectOptions{}); err != nil {
				t.Fatalf("the object did not survive the restart: %v", err)
			}
		})
	}
}
