package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/internal/batchconn"
	"github.com/greeter/greeter/middleware"
	"github.com/greeter/greeter/telemetry"
)

// transportConfig selects how greeterd secures its listener.
type transportConfig struct {
	plaintext      bool
	certFile       string
	keyFile        string
	clientCA       string
	clientAuth     clientAuthFlag
	reloadInterval time.Duration
}

// clientAuthFlag is the value of --client-auth: a certs.ClientAuth, and
// whether it was given at all, since the default follows --client-ca and
// dev mode.
type clientAuthFlag struct {
	mode  certs.ClientAuth
	given bool
}

// UnmarshalText implements encoding.TextUnmarshaler (flag.TextVar) with
// certs.ClientAuth's.
func (f *clientAuthFlag) UnmarshalText(b []byte) error {
	if err := f.mode.UnmarshalText(b); err != nil {
		return err
	}
	f.given = true
	return nil
}

// MarshalText implements encoding.TextMarshaler: empty while not given.
func (f clientAuthFlag) MarshalText() ([]byte, error) {
	if !f.given {
		return nil, nil
	}
	return f.mode.MarshalText()
}

// or returns the given mode, or def when the flag was not given.
func (f clientAuthFlag) or(def certs.ClientAuth) certs.ClientAuth {
	if f.given {
		return f.mode
	}
	return def
}

func (c *transportConfig) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.plaintext, "plaintext", false, "serve without TLS (loopback only; for the tutorial's Python client)")
	fs.StringVar(&c.certFile, "tls-cert", "", "server certificate chain (PEM); empty with --tls-key empty selects dev mode")
	fs.StringVar(&c.keyFile, "tls-key", "", "server private key (PEM)")
	fs.StringVar(&c.clientCA, "client-ca", "", "CA bundle (PEM) that verifies client certificates")
	fs.TextVar(&c.clientAuth, "client-auth", clientAuthFlag{}, "client certificates: none, request or require (default: request when --client-ca is set, else none)")
	fs.DurationVar(&c.reloadInterval, "tls-reload-interval", certs.DefaultRefreshInterval, "how often certificate, key and CA files are checked for changes (at least 100ms)")
}

// security is what the transport settings produce.
type security struct {
	creds credentials.TransportCredentials
	// mode is logged as "security" when greeterd starts listening: "tls",
	// "mtls-request" or "mtls-require" (by --client-auth), "dev" (TLS with
	// the dev PKI, client certificates requested) or "plaintext".
	mode     string
	hint     string          // the greeter command that connects; ADDR stands for the address
	dev      *certs.DevFiles // the dev state, in dev mode
	closers  []io.Closer
	reloader *certs.Reloader
}

// plugin supplies the transport credentials to the server through the
// middleware chain, which lists every server option in one place.
func (s *security) plugin() middleware.Plugin {
	return middleware.Plugin{Name: "transport", ServerOptions: []grpc.ServerOption{grpc.Creds(s.creds)}}
}

// certExpiry reports the serving certificates' expiry for the metrics.
func (s *security) certExpiry() []telemetry.CertExpiry {
	if s.reloader == nil {
		return nil
	}
	var out []telemetry.CertExpiry
	if chain := s.reloader.Certificates(); len(chain) > 0 {
		out = append(out, telemetry.CertExpiry{Name: "server", NotAfter: chain[0].NotAfter})
	}
	if cas := s.reloader.ClientCAs(); len(cas) > 0 {
		first := cas[0].NotAfter
		for _, c := range cas[1:] {
			if c.NotAfter.Before(first) {
				first = c.NotAfter
			}
		}
		out = append(out, telemetry.CertExpiry{Name: "client_ca", NotAfter: first})
	}
	return out
}

func (s *security) close() {
	for _, c := range s.closers {
		c.Close()
	}
}

func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (c *transportConfig) build(_ context.Context, listen, stateDir string, log *slog.Logger) (*security, error) {
	switch {
	case c.plaintext:
		if c.certFile != "" || c.keyFile != "" || c.clientCA != "" {
			return nil, usageError{fmt.Errorf("--plaintext cannot be combined with --tls-cert, --tls-key or --client-ca")}
		}
		if !isLoopback(listen) {
			return nil, usageError{fmt.Errorf("--plaintext is only allowed on a loopback address, not %q", listen)}
		}
		log.Warn("plaintext mode: no TLS, everything (including tokens) crosses the wire in clear; for local tutorial clients only")
		return &security{
			creds: insecure.NewCredentials(),
			mode:  "plaintext",
			hint:  "greeter --plaintext --addr ADDR hello",
		}, nil

	case c.certFile == "" && c.keyFile == "":
		if !isLoopback(listen) {
			return nil, usageError{fmt.Errorf("dev mode (no --tls-cert/--tls-key) listens on loopback only, not %q", listen)}
		}
		dev, err := initDev(stateDir, certs.DevOptions{})
		if err != nil {
			return nil, fmt.Errorf("creating the dev PKI in %s: %w", stateDir, err)
		}
		c.certFile, c.keyFile = dev.ServerCert, dev.ServerKey
		if c.clientCA == "" {
			c.clientCA = dev.CA
		}
		sec, err := c.tls(c.clientAuth.or(certs.ClientAuthRequest), log)
		if err != nil {
			return nil, err
		}
		abs, _ := filepath.Abs(stateDir)
		sec.mode, sec.dev = "dev", dev
		sec.hint = fmt.Sprintf("greeter --addr ADDR --state-dir %s hello", abs)
		return sec, nil

	case c.certFile == "" || c.keyFile == "":
		return nil, usageError{fmt.Errorf("--tls-cert and --tls-key go together")}

	default:
		def := certs.ClientAuthNone
		if c.clientCA != "" {
			def = certs.ClientAuthRequest
		}
		return c.tls(c.clientAuth.or(def), log)
	}
}

// tls loads the certificate, key and client CAs for serving TLS with the
// client certificate policy ca.
func (c *transportConfig) tls(ca certs.ClientAuth, log *slog.Logger) (*security, error) {
	if ca != certs.ClientAuthNone && c.clientCA == "" {
		return nil, usageError{fmt.Errorf("--client-auth=%s needs --client-ca", ca)}
	}
	cfg, reloader, err := certs.ServerConfig(certs.ServerOptions{
		CertFile:        c.certFile,
		KeyFile:         c.keyFile,
		ClientCAFile:    c.clientCA,
		ClientAuth:      ca,
		RefreshInterval: c.reloadInterval,
		Logger:          log,
	})
	if err != nil {
		return nil, fmt.Errorf("loading TLS material: %w", err)
	}
	mode := "tls"
	if ca != certs.ClientAuthNone {
		mode = "mtls-" + ca.String()
	}
	return &security{
		creds:    batchconn.Credentials(credentials.NewTLS(cfg)),
		mode:     mode,
		hint:     "greeter --addr ADDR --ca CA.pem hello",
		closers:  []io.Closer{reloader},
		reloader: reloader,
	}, nil
}
