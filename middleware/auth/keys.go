package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// minRSABits is the smallest RSA modulus accepted for verification.
const minRSABits = 2048

// maxJWKSBytes bounds a JWKS document read from a file or URL.
const maxJWKSBytes = 1 << 20

// minRefreshInterval is the least time between two checks of one key
// source, whatever Config says, so that no setting makes the refresher spin.
const minRefreshInterval = time.Second

// publicKey is one verification key with the single algorithm it may verify.
type publicKey struct {
	kid string
	alg string
	key crypto.PublicKey
}

// keySet is an immutable set of verification keys.
type keySet struct {
	gen   uint64
	keys  []publicKey
	byKID map[string]publicKey
}

func newKeySet(gen uint64, groups ...[]publicKey) *keySet {
	ks := &keySet{gen: gen, byKID: make(map[string]publicKey)}
	for _, g := range groups {
		for _, k := range g {
			if k.kid != "" {
				if _, dup := ks.byKID[k.kid]; dup {
					continue // the first source to name a kid wins
				}
				ks.byKID[k.kid] = k
			}
			ks.keys = append(ks.keys, k)
		}
	}
	return ks
}

// sameKeys reports whether a and b hold the same keys in the same order.
func sameKeys(a, b []publicKey) bool {
	return slices.EqualFunc(a, b, func(x, y publicKey) bool {
		k, ok := x.key.(interface{ Equal(crypto.PublicKey) bool })
		return ok && x.kid == y.kid && x.alg == y.alg && k.Equal(y.key)
	})
}

// fileStamp identifies one version of a key file.
type fileStamp struct {
	mod  time.Time
	size int64
}

// keyStore holds the active key set and keeps it fresh. RPCs only read the
// set (one atomic load); key files and the JWKS URL are read by New and
// then only by a refresh goroutine the store owns, under its own context.
// A timer starts a refresh when a source is due; an RPC whose token names
// an unknown kid asks for one and waits no longer than its own deadline or
// unknownWait, and its cancellation never reaches the fetch. At most one
// refresh runs at a time: requests that arrive while one runs share one
// more run after it. No goroutine exists between refreshes, so a store that
// is never closed leaks no goroutine, only its timer.
//
// golang.org/x/sync/singleflight is not used: it runs the shared call on
// the first caller's goroutine and context, which is the defect this
// replaces, and it has no notion of a schedule or of retries.
type keyStore struct {
	pemFiles     []string
	jwksFile     string
	jwksURL      string
	client       *http.Client
	fetchTimeout time.Duration
	fileEvery    time.Duration
	urlEvery     time.Duration
	retryMax     time.Duration
	unknownEvery time.Duration
	unknownWait  time.Duration
	logger       *slog.Logger

	cur atomic.Pointer[keySet]

	ctx    context.Context // the refresher's; cancelled by close
	cancel context.CancelFunc
	wg     sync.WaitGroup // the running refresh goroutine

	// mu guards the fields below.
	mu           sync.Mutex
	closed       bool
	running      bool          // a refresh goroutine exists
	again        bool          // a refresh was asked for while one ran
	waiters      chan struct{} // callers with an unknown kid; nil if none
	unknownSpent time.Time     // when an unknown-kid fetch last got an answer
	nextURL      time.Time     // when the JWKS URL is due
	failures     int           // consecutive failed fetches of the URL
	timer        *time.Timer

	// Owned by New, then by the refresh goroutine.
	gen        uint64
	fileKeys   map[string][]publicKey
	fileStamps map[string]fileStamp
	urlKeys    []publicKey
	nextFiles  time.Time
}

// newKeyStore validates the key sources of cfg, loads them (ctx bounds the
// first fetch of the JWKS URL) and starts refreshing them.
func newKeyStore(ctx context.Context, cfg Config) (*keyStore, error) {
	if cfg.JWKSURL != "" {
		if err := CheckJWKSURL(cfg.JWKSURL, cfg.AllowInsecureJWKSURL); err != nil {
			return nil, fmt.Errorf("auth: JWKS URL: %w", err)
		}
	}
	s := &keyStore{
		pemFiles:     slices.Clone(cfg.PublicKeyFiles),
		jwksFile:     cfg.JWKSFile,
		jwksURL:      cfg.JWKSURL,
		client:       jwksClient(cfg.HTTPClient),
		fetchTimeout: DefaultHTTPTimeout,
		fileEvery:    interval(cfg.FileCheckInterval, DefaultFileCheckInterval),
		urlEvery:     interval(cfg.JWKSRefreshInterval, DefaultJWKSRefreshInterval),
		retryMax:     interval(cfg.JWKSRetryInterval, DefaultJWKSRetryInterval),
		unknownEvery: orDefault(cfg.UnknownKIDInterval, DefaultUnknownKIDInterval),
		unknownWait:  orDefault(cfg.UnknownKIDWait, DefaultUnknownKIDWait),
		logger:       cfg.Logger,
		fileKeys:     make(map[string][]publicKey),
		fileStamps:   make(map[string]fileStamp),
	}
	if err := s.load(ctx); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.mu.Lock()
	s.scheduleLocked()
	s.mu.Unlock()
	return s, nil
}

// interval returns d, or def if d is not positive, and at least
// minRefreshInterval.
func interval(d, def time.Duration) time.Duration {
	return max(orDefault(d, def), minRefreshInterval)
}

// orDefault returns d, or def if d is not positive.
func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// load reads every source for the first time. Files must load; a JWKS URL
// that fails is retried in the background, as long as some key was loaded.
func (s *keyStore) load(ctx context.Context) error {
	for _, path := range s.files() {
		keys, stamp, err := readKeyFile(path, path == s.jwksFile)
		if err != nil {
			return err
		}
		s.fileKeys[path], s.fileStamps[path] = keys, stamp
	}
	s.nextFiles = time.Now().Add(s.fileEvery)
	if s.jwksURL != "" {
		s.fetchURL(ctx)
	}
	s.publish()
	if len(s.cur.Load().keys) == 0 {
		return errors.New("auth: no usable verification key was loaded")
	}
	return nil
}

func (s *keyStore) files() []string {
	files := slices.Clone(s.pemFiles)
	if s.jwksFile != "" {
		files = append(files, s.jwksFile)
	}
	return files
}

// publish makes the current per-source keys the active key set.
func (s *keyStore) publish() {
	s.gen++
	groups := make([][]publicKey, 0, len(s.fileKeys)+1)
	for _, path := range s.files() {
		groups = append(groups, s.fileKeys[path])
	}
	groups = append(groups, s.urlKeys)
	s.cur.Store(newKeySet(s.gen, groups...))
}

// current returns the active key set. It does no I/O and takes no lock.
func (s *keyStore) current() *keySet {
	return s.cur.Load()
}

// reloadFiles re-reads the key files whose stamp changed and reports
// whether any keys changed. A file that fails keeps its last good keys.
func (s *keyStore) reloadFiles() bool {
	changed := false
	for _, path := range s.files() {
		fi, err := os.Stat(path)
		if err != nil {
			s.logger.LogAttrs(s.ctx, slog.LevelError, "key_reload_failed",
				slog.String("file", path), slog.String("error", err.Error()))
			continue
		}
		if (fileStamp{fi.ModTime(), fi.Size()}) == s.fileStamps[path] {
			continue
		}
		keys, stamp, err := readKeyFile(path, path == s.jwksFile)
		if err != nil {
			// Keep the last good keys; retry when the file changes again.
			s.fileStamps[path] = fileStamp{fi.ModTime(), fi.Size()}
			s.logger.LogAttrs(s.ctx, slog.LevelError, "key_reload_failed",
				slog.String("file", path), slog.String("error", err.Error()))
			continue
		}
		s.fileKeys[path], s.fileStamps[path] = keys, stamp
		s.logger.LogAttrs(s.ctx, slog.LevelInfo, "keys_reloaded", slog.String("file", path), slog.Int("keys", len(keys)))
		changed = true
	}
	return changed
}

// readKeyFile reads a PEM public key or a JWKS document.
func readKeyFile(path string, jwks bool) ([]publicKey, fileStamp, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSBytes+1))
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: read %s: %w", path, err)
	}
	stamp := fileStamp{fi.ModTime(), fi.Size()}
	if jwks {
		keys, err := parseJWKS(data)
		if err != nil {
			return nil, fileStamp{}, fmt.Errorf("auth: %s: %w", path, err)
		}
		return keys, stamp, nil
	}
	kid := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	k, err := parsePublicKeyPEM(data, kid)
	if err != nil {
		return nil, fileStamp{}, fmt.Errorf("auth: %s: %w", path, err)
	}
	return []publicKey{k}, stamp, nil
}

// parsePublicKeyPEM parses the first PEM block of data: a PKIX or PKCS #1
// public key, or a certificate.
func parsePublicKeyPEM(data []byte, kid string) (publicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return publicKey{}, errors.New("no PEM block found")
	}
	var (
		pub any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE KEY") {
			return publicKey{}, errors.New("file holds a private key; configure the public key")
		}
		return publicKey{}, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return publicKey{}, fmt.Errorf("parse public key: %w", err)
	}
	alg, err := algorithmFor(pub)
	if err != nil {
		return publicKey{}, err
	}
	return publicKey{kid: kid, alg: alg, key: pub}, nil
}

// algorithmFor pins the one JWS algorithm a public key verifies.
func algorithmFor(pub any) (string, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return "EdDSA", nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return "ES256", nil
		case elliptic.P384():
			return "ES384", nil
		case elliptic.P521():
			return "ES512", nil
		}
		return "", errors.New("unsupported ECDSA curve")
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return "", fmt.Errorf("RSA key shorter than %d bits", minRSABits)
		}
		return "RS256", nil
	}
	return "", fmt.Errorf("unsupported public key type %T", pub)
}
