package main

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/greeter/greeter/internal/envflag"
	"github.com/greeter/greeter/middleware/ratelimit"
)

// TestTrustedProxiesFlag (R5): --trusted-proxies takes CIDRs and single
// addresses, from the command line or the environment, and refuses
// anything else with a message that names the bad entry.
func TestTrustedProxiesFlag(t *testing.T) {
	tests := []struct {
		args    []string
		env     string
		want    string
		wantErr string
	}{
		{want: ""},
		{args: []string{"--trusted-proxies", "10.0.0.0/8, 192.0.2.7,2001:db8::/32"}, want: "10.0.0.0/8,192.0.2.7/32,2001:db8::/32"},
		{args: []string{"--trusted-proxies=10.0.0.0/8", "--trusted-proxies=::1"}, want: "10.0.0.0/8,::1/128"},
		{env: "172.16.0.0/12", want: "172.16.0.0/12"},
		{args: []string{"--trusted-proxies=10.0.0.1/8"}, wantErr: "has host bits set; did you mean 10.0.0.0/8?"},
		{args: []string{"--trusted-proxies=proxy.example"}, wantErr: `"proxy.example" is neither a CIDR nor an IP address`},
		{args: []string{"--trusted-proxies=10.0.0.0/33"}, wantErr: `"10.0.0.0/33" is not a CIDR`},
	}
	for _, tc := range tests {
		var c serveConfig
		fs := serveFlags(&c)
		fs.SetOutput(new(bytes.Buffer))
		err := fs.Parse(tc.args)
		if err == nil && tc.env != "" {
			env := map[string]string{envflag.EnvName("trusted-proxies"): tc.env}
			err = envflag.Apply(fs, func(k string) string { return env[k] }, "")
		}
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: got error %v, want one containing %q", tc.args, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q %q: %v", tc.args, tc.env, err)
			continue
		}
		if got := c.peers.trustedProxies.String(); got != tc.want {
			t.Errorf("%q %q: got %q, want %q", tc.args, tc.env, got, tc.want)
		}
	}
}

// TestPeerLimitDefaults (R3, R5): the per-peer settings default to the
// limiter's defaults, reach the limiter options as given, and connections
// are rotated by default.
func TestPeerLimitDefaults(t *testing.T) {
	var c serveConfig
	fs := serveFlags(&c)
	if err := fs.Parse([]string{"--trusted-proxies=10.0.0.0/8", "--ipv6-prefix=48"}); err != nil {
		t.Fatal(err)
	}
	o := c.peers.limiterOptions(ratelimit.Options{MaxKeys: 7})
	if o.MaxKeys != 7 || o.IPv6Prefix != 48 || o.MaxPublicStreamsPerPeer != ratelimit.DefaultPublicStreamsPerPeer ||
		o.MaxPublicStreams != ratelimit.DefaultPublicStreams || len(o.TrustedProxies) != 1 ||
		o.TrustedProxies[0] != netip.MustParsePrefix("10.0.0.0/8") {
		t.Errorf("limiter options: got %+v", o)
	}
	if c.peers.maxConnsPerIP != ratelimit.DefaultConnsPerPeer {
		t.Errorf("--max-conns-per-ip default: got %d, want %d", c.peers.maxConnsPerIP, ratelimit.DefaultConnsPerPeer)
	}
	if c.limits.maxConnectionAge != 30*time.Minute || c.limits.maxConnectionGrace != 30*time.Minute {
		t.Errorf("connection age and grace: got %v and %v, want 30m each", c.limits.maxConnectionAge, c.limits.maxConnectionGrace)
	}
}

// TestPeerLimitsChecked (R3, R5): values out of range are usage errors
// (exit 2) naming the flag.
func TestPeerLimitsChecked(t *testing.T) {
	tests := []struct{ arg, want string }{
		{"--ipv6-prefix=0", "--ipv6-prefix must be between 1 and 128"},
		{"--ipv6-prefix=129", "--ipv6-prefix must be between 1 and 128"},
		{"--max-public-streams-per-peer=0", "--max-public-streams-per-peer must be at least 1"},
		{"--max-public-streams=-1", "--max-public-streams must be at least 1"},
		{"--max-conns-per-ip=0", "--max-conns-per-ip must be at least 1"},
		{"--max-connection-age=-1s", "must not be negative"},
		{"--max-connection-age-grace=-1s", "must not be negative"},
	}
	for _, tc := range tests {
		var stderr bytes.Buffer
		args := []string{tc.arg, "--state-dir", t.TempDir(), "--plaintext"}
		code := run(t.Context(), args, new(bytes.Buffer), &stderr, func(string) string { return "" })
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.arg, code, stderr.String(), tc.want)
		}
	}
}
