package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/client"
)

// maxTokenFileSize bounds what --token-file reads.
const maxTokenFileSize = 16 << 10

// clientOptions turns the connection flags into client.Options. With
// --state-dir, the dev CA, client certificate and token written by greeterd
// fill in whatever was not given explicitly.
func (c *connection) clientOptions() (client.Options, error) {
	opts := client.Options{ChunkSize: int(c.chunkSize), CallTimeout: c.timeout}
	if c.stateDir != "" {
		fill := func(p *string, name string) {
			if *p == "" {
				if path := filepath.Join(c.stateDir, name); fileExists(path) {
					*p = path
				}
			}
		}
		fill(&c.ca, "ca.pem")
		if c.cert == "" && c.key == "" {
			fill(&c.cert, "client.pem")
			fill(&c.key, "client-key.pem")
		}
		if c.token == "" {
			fill(&c.tokenFile, "token")
		}
	}
	token, err := c.bearerToken()
	if err != nil {
		return opts, err
	}
	if c.plaintext {
		if c.ca != "" || c.cert != "" || c.key != "" {
			return opts, usageError{fmt.Errorf("--plaintext cannot be combined with --ca, --cert or --key")}
		}
		if token != "" {
			return opts, usageError{fmt.Errorf("refusing to send a bearer token over --plaintext")}
		}
		opts.Plaintext = true
		return opts, nil
	}
	if (c.cert == "") != (c.key == "") {
		return opts, usageError{fmt.Errorf("--cert and --key go together")}
	}
	tlsCfg, err := certs.ClientConfig(certs.ClientOptions{CAFile: c.ca, CertFile: c.cert, KeyFile: c.key, ServerName: c.serverName})
	if err != nil {
		return opts, err
	}
	opts.TLS = tlsCfg
	if token != "" {
		opts.PerRPC = client.BearerToken(token)
	}
	return opts, nil
}

func (c *connection) bearerToken() (string, error) {
	if c.token != "" {
		return strings.TrimSpace(c.token), nil
	}
	if c.tokenFile == "" {
		return "", nil
	}
	f, err := os.Open(c.tokenFile)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxTokenFileSize+1))
	if err != nil {
		return "", err
	}
	if len(buf) > maxTokenFileSize {
		return "", fmt.Errorf("%s: token file larger than %d bytes", c.tokenFile, maxTokenFileSize)
	}
	return strings.TrimSpace(string(buf)), nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
