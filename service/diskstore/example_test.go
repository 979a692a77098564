package diskstore_test

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/greeter/greeter/service"
	"github.com/greeter/greeter/service/diskstore"
)

func Example() {
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
	// At start-up, remove the temporary files that a process that died
	// left behind (those older than MinTemporaryAge).
	if _, err := s.CleanTemporaries(0); err != nil {
		fmt.Println(err)
		return
	}

	ctx := context.Background()
	u, err := s.Create(ctx, "alice", "docs/hello.txt")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer u.Abort() // a no-op after a successful Commit
	io.WriteString(u, "hello, ")
	io.WriteString(u, "world\n")
	info, err := u.Commit(ctx, service.Expect{Size: 13, HasSize: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s: %d bytes, sha256 %x...\n", info.Name, info.Size, info.SHA256[:4])

	_, err = s.Open(ctx, "bob", "docs/hello.txt")
	fmt.Println("bob:", err)
	// Output:
	// docs/hello.txt: 13 bytes, sha256 853ff937...
	// bob: diskstore: open "docs/hello.txt": not found
}
