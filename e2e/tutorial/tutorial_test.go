// Package tutorial proves the wire contract: a client generated from the
// tutorial's own, unmodified hello.proto keeps working against greeterd.
package tutorial

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/greeter/greeter/e2e/e2etest"
	"github.com/greeter/greeter/e2e/tutorial/tutorialpb"
)

var bins e2etest.Binaries

func TestMain(m *testing.M) { os.Exit(e2etest.Main(m, &bins)) }

// TestTutorialClient runs the tutorial's client flow against a plaintext
// greeterd on loopback: SayHello, an upload in 1024-byte chunks with the
// extension split off as the tutorial's client does, and a download.
func TestTutorialClient(t *testing.T) {
	srv := bins.StartServer(t, nil, "--plaintext", "--state-dir", t.TempDir())
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := tutorialpb.NewGreeterClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	hello, err := c.SayHello(ctx, &tutorialpb.HelloRequest{Name: "John Doe", Age: 30})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := hello.GetMessage(), "Hello, John Doe! Your age is 30"; got != want {
		t.Fatalf("SayHello = %q, want %q", got, want)
	}

	data := bytes.Repeat([]byte("tutorial bytes\n"), 1000)
	up, err := c.UploadFile(ctx)
	if err != nil {
		t.Fatal(err)
	}
	md := &tutorialpb.MetaData{Filename: "test", Extension: ".txt"}
	if err := up.Send(&tutorialpb.UploadFileRequest{Request: &tutorialpb.UploadFileRequest_Metadata{Metadata: md}}); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < len(data); off += 1024 {
		chunk := data[off:min(off+1024, len(data))]
		if err := up.Send(&tutorialpb.UploadFileRequest{Request: &tutorialpb.UploadFileRequest_ChunkData{ChunkData: chunk}}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := up.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetMessage() != "Success!" {
		t.Fatalf("upload answered %q, want Success!", resp.GetMessage())
	}

	down, err := c.DownloadFile(ctx, md)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for {
		msg, err := down.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got.Write(msg.GetChunkData())
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("downloaded %d bytes, want the %d uploaded", got.Len(), len(data))
	}

	// Where the tutorial answered OK with an empty stream, we say NotFound.
	down, err = c.DownloadFile(ctx, &tutorialpb.MetaData{Filename: "missing", Extension: ".txt"})
	if err == nil {
		_, err = down.Recv()
	}
	if status.Code(err) != codes.NotFound {
		t.Fatalf("download of a missing file: got %v, want NotFound", err)
	}
}
