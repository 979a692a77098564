package wire_test

import (
	"slices"
	"testing"

	pb "github.com/greeter/greeter/proto/greeterpb"
	"github.com/greeter/greeter/proto/wire"
)

func TestIsPublic(t *testing.T) {
	tests := []struct {
		method string
		want   bool
	}{
		{"/grpc.health.v1.Health/Check", true},
		{"/grpc.health.v1.Health/Watch", true},
		{"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", true},
		{"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", true},
		{"/grpc.health.v1.HealthX/Check", false},
		{"grpc.health.v1.Health/Check", false},
		{"/Greeter/SayHello", false},
		{"/Greeter/grpc.health.v1.Health/", false},
		{"", false},
	}
	for _, tc := range tests {
		if got := wire.IsPublic(tc.method); got != tc.want {
			t.Errorf("IsPublic(%q): got %v, want %v", tc.method, got, tc.want)
		}
	}
}

func TestIdempotentMethodsNeverWrite(t *testing.T) {
	got := wire.IdempotentMethods()
	for _, never := range []string{pb.Greeter_UploadFile_FullMethodName, pb.Greeter_DeleteFile_FullMethodName, pb.Greeter_DownloadFile_FullMethodName} {
		if slices.Contains(got, never) {
			t.Errorf("IdempotentMethods() = %q, must not contain %s", got, never)
		}
	}
	if !slices.Contains(got, pb.Greeter_SayHello_FullMethodName) {
		t.Errorf("IdempotentMethods() = %q, want SayHello among them", got)
	}
}
