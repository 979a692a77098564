package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/greeter/greeter/certs"
)

// maxTokenSize bounds what a token file or "greeterd token" may yield.
const maxTokenSize = 16 << 10

// mintTimeout bounds one run of "greeterd token".
const mintTimeout = 30 * time.Second

// credentials are what the users present: one TLS configuration for all,
// and one bearer token per subject.
type credentials struct {
	tls    *tls.Config
	tokens []string
	// source says where the tokens came from, for the report.
	source string
}

// loadCredentials reads the TLS material and the subjects' tokens, minting
// them with "greeterd token" when -subjects asks for more than one and no
// token files were given.
func loadCredentials(ctx context.Context, cfg *config) (*credentials, error) {
	if cfg.stateDir != "" {
		fill := func(p *string, name string) {
			if *p == "" {
				if path := filepath.Join(cfg.stateDir, name); regularFile(path) {
					*p = path
				}
			}
		}
		fill(&cfg.ca, "ca.pem")
		if cfg.cert == "" && cfg.key == "" {
			fill(&cfg.cert, "client.pem")
			fill(&cfg.key, "client-key.pem")
		}
	}
	tlsCfg, err := certs.ClientConfig(certs.ClientOptions{CAFile: cfg.ca, CertFile: cfg.cert, KeyFile: cfg.key})
	if err != nil {
		return nil, err
	}
	creds := &credentials{tls: tlsCfg}
	switch {
	case len(cfg.tokenFiles) > 0:
		for _, f := range cfg.tokenFiles {
			tok, err := readToken(f)
			if err != nil {
				return nil, err
			}
			creds.tokens = append(creds.tokens, tok)
		}
		creds.source = fmt.Sprintf("%d token files", len(cfg.tokenFiles))
	case cfg.stateDir == "":
		return nil, usageError{errors.New("no token: give -state-dir or -token-file")}
	case cfg.subjects == 1:
		tok, err := readToken(filepath.Join(cfg.stateDir, "token"))
		if err != nil {
			return nil, err
		}
		creds.tokens = []string{tok}
		creds.source = "the dev token of " + cfg.stateDir
	default:
		for i := range cfg.subjects {
			sub := fmt.Sprintf("load-%02d", i+1)
			tok, err := mintToken(ctx, cfg.greeterd, cfg.stateDir, sub)
			if err != nil {
				return nil, err
			}
			creds.tokens = append(creds.tokens, tok)
		}
		creds.source = fmt.Sprintf("subjects load-01 … load-%02d minted with %s token", cfg.subjects, filepath.Base(cfg.greeterd))
	}
	return creds, nil
}

// mintToken runs "greeterd token --state-dir dir --sub sub".
func mintToken(ctx context.Context, greeterd, dir, sub string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, mintTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, greeterd, "token", "--state-dir", dir, "--sub", sub)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s token --sub %s: %v: %s", greeterd, sub, err, strings.TrimSpace(stderr.String()))
	}
	tok := strings.TrimSpace(stdout.String())
	if tok == "" || len(tok) > maxTokenSize {
		return "", fmt.Errorf("%s token --sub %s printed no usable token", greeterd, sub)
	}
	return tok, nil
}

// readToken reads a bearer token from path.
func readToken(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	buf, err := io.ReadAll(io.LimitReader(f, maxTokenSize+1))
	if err != nil {
		return "", err
	}
	if len(buf) > maxTokenSize {
		return "", fmt.Errorf("%s: token file larger than %d bytes", path, maxTokenSize)
	}
	tok := strings.TrimSpace(string(buf))
	if tok == "" {
		return "", fmt.Errorf("%s: empty token file", path)
	}
	return tok, nil
}

func regularFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
