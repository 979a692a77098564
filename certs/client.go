package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// ClientOptions configures ClientConfig.
type ClientOptions struct {
	// CAFile is a PEM bundle of the CAs that verify the server. Empty means
	// the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and key for mutual
	// TLS. Both or neither must be set.
	CertFile, KeyFile string
	// ServerName is the name the server certificate must carry. Empty means
	// the host of the address dialled (grpc-go fills it in from the target's
	// authority).
	ServerName string
}

// ClientConfig loads the client's TLS material once and returns a
// configuration for grpc.WithTransportCredentials(credentials.NewTLS(cfg)).
// It requires TLS 1.3 and ALPN "h2". Loading fails if a file is missing or
// invalid, the key does not match the certificate, or the client certificate
// has expired.
func ClientConfig(opts ClientOptions) (*tls.Config, error) {
	if (opts.CertFile == "") != (opts.KeyFile == "") {
		return nil, errors.New("certs: client certificate and key files go together")
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		NextProtos: []string{"h2"},
		ServerName: opts.ServerName,
	}
	if opts.CAFile != "" {
		caPEM, err := readFile(opts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("certs: read CA bundle: %w", err)
		}
		cas, err := parseCertificatesPEM(caPEM)
		if err != nil {
			return nil, fmt.Errorf("certs: CA bundle %s: %w", opts.CAFile, err)
		}
		cfg.RootCAs = x509.NewCertPool()
		for _, c := range cas {
			cfg.RootCAs.AddCert(c)
		}
	}
	if opts.CertFile != "" {
		certPEM, err := readFile(opts.CertFile)
		if err != nil {
			return nil, fmt.Errorf("certs: read client certificate: %w", err)
		}
		keyPEM, err := readFile(opts.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("certs: read client key: %w", err)
		}
		cert, _, err := parseKeyPair(certPEM, keyPEM, time.Now())
		if err != nil {
			return nil, fmt.Errorf("certs: client certificate %s and key %s: %w", opts.CertFile, opts.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
