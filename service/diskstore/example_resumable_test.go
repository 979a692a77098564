package diskstore_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

func ExampleStore_BeginResumable() {
	dir, err := os.MkdirTemp("", "diskstore-example")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	s, err := diskstore.Open(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	// At start-up and then periodically: drop uploads nobody resumed.
	if _, err := s.CleanExpiredUploads(service.DefaultResumableTTL); err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	data := "hello, world\n"
	r := service.Resume{
		ID:   "upload-1",
		Name: "hello.txt",
		Want: service.Expect{Size: int64(len(data)), HasSize: true, SHA256: sha256.Sum256([]byte(data)), HasSHA256: true},
		TTL:  service.DefaultResumableTTL,
	}
	u, err := s.BeginResumable(ctx, "alice", r)
	if err != nil {
		fmt.Println(err)
		return
	}
	io.WriteString(u, data[:7])
	u.Suspend() // the stream broke: keep the bytes

	committed, err := s.QueryResumable(ctx, "alice", "upload-1", time.Hour)
	fmt.Println("committed:", committed, err)

	r.Offset = committed
	u, err = s.BeginResumable(ctx, "alice", r)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer u.Suspend() // a no-op after Commit
	io.WriteString(u, data[committed:])
	info, err := u.Commit(ctx, r.Want)
	fmt.Println(info.Name, info.Size, err)
	// Output:
	// committed: 7 <nil>
	// hello.txt 13 <nil>
}
