package certs

import (
	"bytes"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"
)

func TestParseClientAuth(t *testing.T) {
	tests := []struct {
		in      string
		want    ClientAuth
		wantTLS tls.ClientAuthType
		wantErr bool
	}{
		{"none", ClientAuthNone, tls.NoClientCert, false},
		{"request", ClientAuthRequest, tls.VerifyClientCertIfGiven, false},
		{"require", ClientAuthRequire, tls.RequireAndVerifyClientCert, false},
		{"", 0, 0, true},
		{"Require", 0, 0, true},
		{"verify", 0, 0, true},
	}
	for _, tt := range tests {
		got, err := ParseClientAuth(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseClientAuth(%q): got err %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		var viaText ClientAuth
		textErr := viaText.UnmarshalText([]byte(tt.in))
		if (textErr != nil) != tt.wantErr || viaText != got {
			t.Errorf("UnmarshalText(%q): got (%v, %v), want (%v, error %v)", tt.in, viaText, textErr, got, tt.wantErr)
		}
		if tt.wantErr {
			continue
		}
		if got != tt.want || got.String() != tt.in || got.tlsClientAuth() != tt.wantTLS {
			t.Errorf("ParseClientAuth(%q): got %v (tls %v), want %v (tls %v)", tt.in, got, got.tlsClientAuth(), tt.want, tt.wantTLS)
		}
		if b, err := got.MarshalText(); err != nil || string(b) != tt.in {
			t.Errorf("MarshalText(%v): got (%q, %v), want %q", got, b, err, tt.in)
		}
	}
}

// TestServerConfigSettings checks the fields of the returned configuration
// and of the per-connection configuration grpc-go actually uses.
func TestServerConfigSettings(t *testing.T) {
	ca := newTestCA(t, "test CA")
	srvLeaf := ca.server(t)
	tests := []struct {
		mode    ClientAuth
		wantTLS tls.ClientAuthType
	}{
		{ClientAuthNone, tls.NoClientCert},
		{ClientAuthRequest, tls.VerifyClientCertIfGiven},
		{ClientAuthRequire, tls.RequireAndVerifyClientCert},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			opts := serverFiles(t, srvLeaf, ca.certPEM)
			opts.ClientAuth = tt.mode
			cfg, r, err := ServerConfig(opts)
			if err != nil {
				t.Fatalf("ServerConfig: %v", err)
			}
			defer r.Close()
			conn, err := cfg.GetConfigForClient(&tls.ClientHelloInfo{})
			if err != nil {
				t.Fatalf("GetConfigForClient: %v", err)
			}
			for name, c := range map[string]*tls.Config{"returned": cfg, "per-connection": conn} {
				if c.MinVersion != tls.VersionTLS13 {
					t.Errorf("%s MinVersion: got %#x, want TLS 1.3", name, c.MinVersion)
				}
				if len(c.NextProtos) != 1 || c.NextProtos[0] != "h2" {
					t.Errorf("%s NextProtos: got %q, want [h2]", name, c.NextProtos)
				}
				if c.ClientAuth != tt.wantTLS {
					t.Errorf("%s ClientAuth: got %v, want %v", name, c.ClientAuth, tt.wantTLS)
				}
				if !c.SessionTicketsDisabled {
					t.Errorf("%s SessionTicketsDisabled: got false, want true", name)
				}
			}
			if got, want := conn.ClientCAs != nil, tt.mode != ClientAuthNone; got != want {
				t.Errorf("per-connection ClientCAs set: got %v, want %v", got, want)
			}
			if got := len(r.ClientCAs()); got != map[bool]int{true: 1, false: 0}[tt.mode != ClientAuthNone] {
				t.Errorf("ClientCAs: got %d certificates", got)
			}
			if got := r.Certificates(); len(got) != 1 || got[0].SerialNumber.Cmp(srvLeaf.cert.SerialNumber) != 0 {
				t.Errorf("Certificates: got %v, want the server leaf", got)
			}
			if got, want := r.NotAfter(), srvLeaf.cert.NotAfter; !got.Equal(want) {
				t.Errorf("NotAfter: got %v, want %v", got, want)
			}
			// credentials.NewTLS re-applies its defaults to the
			// per-connection configuration; TLS 1.3 must survive that.
			if got := credentials.NewTLS(cfg).Info().SecurityProtocol; got != "tls" {
				t.Errorf("credentials.NewTLS: security protocol %q, want tls", got)
			}
		})
	}
}

// TestServerConfigErrors checks that bad options and bad files fail at
// start-up instead of producing a server that cannot handshake.
func TestServerConfigErrors(t *testing.T) {
	ca := newTestCA(t, "test CA")
	other := newTestCA(t, "other CA")
	good := ca.server(t)
	second := ca.server(t)
	expired := ca.issue(t, IssueRequest{Kind: KindServer, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-2 * time.Hour), Lifetime: time.Hour})

	tests := []struct {
		name string
		edit func(t *testing.T, o *ServerOptions)
		want string // substring of the error
	}{
		{"no certificate file", func(_ *testing.T, o *ServerOptions) { o.CertFile = "" }, "required"},
		{"no key file", func(_ *testing.T, o *ServerOptions) { o.KeyFile = "" }, "required"},
		{"missing certificate file", func(_ *testing.T, o *ServerOptions) { o.CertFile += ".missing" }, "no such file"},
		{"require without client CA", func(_ *testing.T, o *ServerOptions) { o.ClientAuth, o.ClientCAFile = ClientAuthRequire, "" }, "client CA"},
		{"request without client CA", func(_ *testing.T, o *ServerOptions) { o.ClientAuth, o.ClientCAFile = ClientAuthRequest, "" }, "client CA"},
		{"invalid client auth", func(_ *testing.T, o *ServerOptions) { o.ClientAuth = 7 }, "client auth"},
		{"negative refresh interval", func(_ *testing.T, o *ServerOptions) { o.RefreshInterval = -time.Second }, "refresh"},
		{"truncated certificate", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.CertFile, good.certPEM[:len(good.certPEM)/2])
		}, "truncated"},
		{"truncated key", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.KeyFile, good.keyPEM[:len(good.keyPEM)-20])
		}, "key"},
		{"key of another certificate", func(t *testing.T, o *ServerOptions) { writeInPlace(t, o.KeyFile, second.keyPEM) }, "private key does not match"},
		{"key file holds a certificate", func(t *testing.T, o *ServerOptions) { writeInPlace(t, o.KeyFile, good.certPEM) }, "key"},
		{"expired certificate", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.CertFile, expired.certPEM)
			writeInPlace(t, o.KeyFile, expired.keyPEM)
		}, "expired"},
		{"truncated client CA bundle", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.ClientCAFile, append(append([]byte{}, ca.certPEM...), other.certPEM[:40]...))
		}, "truncated"},
		{"client CA bundle of keys", func(t *testing.T, o *ServerOptions) { writeInPlace(t, o.ClientCAFile, ca.keyPEM) }, "CERTIFICATE"},
		{"oversized certificate file", func(t *testing.T, o *ServerOptions) {
			writeInPlace(t, o.CertFile, bytes.Repeat(good.certPEM, maxPEMFileSize/len(good.certPEM)+1))
		}, "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := serverFiles(t, good, ca.certPEM)
			o.ClientAuth = ClientAuthRequire
			tt.edit(t, &o)
			cfg, r, err := ServerConfig(o)
			if err == nil {
				r.Close()
				t.Fatalf("ServerConfig: got config %p, want an error containing %q", cfg, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ServerConfig: got error %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
