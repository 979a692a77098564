package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/greeter/greeter/certs"
	"github.com/greeter/greeter/internal/envflag"
)

// listFlag collects a comma-separated or repeated flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func parseSubcommand(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	if err := envflag.Apply(fs, getenv, ""); err != nil {
		return usageError{err}
	}
	return checkDurations(fs)
}

func parseIPs(list []string) ([]netip.Addr, error) {
	out := make([]netip.Addr, 0, len(list))
	for _, s := range list {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, usageError{fmt.Errorf("invalid IP address %q", s)}
		}
		out = append(out, ip)
	}
	return out, nil
}

// runInit creates the dev state directory explicitly.
func runInit(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("greeterd init", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", ".greeter", "directory for the dev PKI, JWT keys and token")
	user := fs.String("user", "dev", "name of the dev client certificate and token subject")
	var dns, ips listFlag
	fs.Var(&dns, "san-dns", "extra DNS names for the dev server certificate (comma-separated)")
	fs.Var(&ips, "san-ip", "extra IP addresses for the dev server certificate (comma-separated)")
	if err := parseSubcommand(fs, args, getenv); err != nil {
		return err
	}
	addrs, err := parseIPs(ips)
	if err != nil {
		return err
	}
	dev, err := initDev(*stateDir, certs.DevOptions{ServerDNSNames: dns, ServerIPs: addrs, ClientName: *user})
	if err != nil {
		return err
	}
	if dev.Created {
		fmt.Fprintf(stdout, "created the dev PKI, JWT keys and token in %s\n", dev.Dir)
	} else {
		fmt.Fprintf(stdout, "the dev PKI in %s is already complete; nothing changed\n", dev.Dir)
	}
	return nil
}

// initDev creates the dev PKI and, if missing, the dev token.
func initDev(stateDir string, opts certs.DevOptions) (*certs.DevFiles, error) {
	dev, err := certs.InitDev(stateDir, opts)
	if err != nil {
		return nil, fmt.Errorf("dev state in %s: %w", stateDir, err)
	}
	created, err := ensureDevToken(dev, opts.ClientName)
	if err != nil {
		return nil, err
	}
	dev.Created = dev.Created || created
	return dev, nil
}

// runCertIssue issues a certificate from the dev CA.
func runCertIssue(args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	fs := flag.NewFlagSet("greeterd cert issue", flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", ".greeter", "dev state directory holding ca.pem and ca-key.pem")
	caCert := fs.String("ca-cert", "", "CA certificate (default <state-dir>/ca.pem)")
	caKey := fs.String("ca-key", "", "CA private key (default <state-dir>/ca-key.pem)")
	kind := fs.String("kind", "client", "certificate kind: client or server")
	name := fs.String("name", "", "subject common name")
	var dns, ips, uris listFlag
	fs.Var(&dns, "dns", "DNS subject alternative names (comma-separated)")
	fs.Var(&ips, "ip", "IP subject alternative names (comma-separated)")
	fs.Var(&uris, "uri", "URI subject alternative name, e.g. spiffe://greeter.local/svc/billing")
	lifetime := fs.Duration("lifetime", certs.DefaultLeafLifetime, "how long the certificate is valid")
	out := fs.String("out", "", "write the certificate to FILE.pem and the key to FILE-key.pem (default: print both)")
	if err := parseSubcommand(fs, args, getenv); err != nil {
		return err
	}
	k, err := certs.ParseKind(*kind)
	if err != nil {
		return usageError{err}
	}
	addrs, err := parseIPs(ips)
	if err != nil {
		return err
	}
	if *caCert == "" {
		*caCert = filepath.Join(*stateDir, "ca.pem")
	}
	if *caKey == "" {
		*caKey = filepath.Join(*stateDir, "ca-key.pem")
	}
	caPEM, err := os.ReadFile(*caCert)
	if err != nil {
		return err
	}
	caKeyPEM, err := os.ReadFile(*caKey)
	if err != nil {
		return err
	}
	certPEM, keyPEM, err := certs.Issue(caPEM, caKeyPEM, certs.IssueRequest{
		Kind: k, CommonName: *name, DNSNames: dns, IPAddresses: addrs, URIs: uris, Lifetime: *lifetime,
	})
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = fmt.Fprintf(stdout, "%s%s", certPEM, keyPEM)
		return err
	}
	certPath, keyPath := strings.TrimSuffix(*out, ".pem")+".pem", strings.TrimSuffix(*out, ".pem")+"-key.pem"
	if err := writeNew(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	if err := writeNew(certPath, certPEM, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s and %s (valid until %s)\n", certPath, keyPath, time.Now().Add(*lifetime).UTC().Format(time.RFC3339))
	return nil
}

// writeNew writes a file that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
