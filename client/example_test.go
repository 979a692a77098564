package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/client"
)

// ExampleClient_UploadFile uploads a file so that it survives broken
// connections and restarts of either side: run again after a failure, it
// sends only what the server does not have yet.
func ExampleClient_UploadFile() {
	tlsCfg, err := certs.ClientConfig(certs.ClientOptions{CAFile: ".greeter/ca.pem"})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("localhost:50051", client.Options{
		TLS:   tlsCfg,
		Retry: client.RetryPolicy{MaxAttempts: 5, MaxBackoff: 5 * time.Second},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := c.UploadFile(context.Background(), "backup.tar", "backups/2024.tar", nil)
	if err != nil {
		log.Fatalf("upload failed after %d attempts (%d bytes sent): %v", res.Attempts, res.Sent, err)
	}
	fmt.Printf("stored %s: %d bytes, %d sent in %d attempts\n", res.Name, res.Size, res.Sent, res.Attempts)
}

// ExampleClient_DownloadFile downloads a file into place; an interrupted
// download leaves client.PartialPath(path) behind, and the next call
// continues from it.
func ExampleClient_DownloadFile() {
	tlsCfg, err := certs.ClientConfig(certs.ClientOptions{CAFile: ".greeter/ca.pem"})
	if err != nil {
		log.Fatal(err)
	}
	c, err := client.New("localhost:50051", client.Options{TLS: tlsCfg})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	res, err := c.DownloadFile(context.Background(), "backups/2024.tar", "restore.tar", func(done, total int64) {
		fmt.Printf("\r%d/%d", done, total)
	})
	if err != nil {
		log.Fatalf("download failed; %s keeps what arrived: %v", client.PartialPath("restore.tar"), err)
	}
	fmt.Printf("\nfetched %s: %d bytes, %d received\n", res.Name, res.Size, res.Received)
}
