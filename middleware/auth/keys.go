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

// refreshUnknownKID is called when a token names a kid the active set
// lacks. Unless an unknown kid got the JWKS URL an answer less than
// unknownEvery ago, it asks the refresher for a fetch and waits for it
// until ctx ends or unknownWait passes. It returns the active set then.
func (s *keyStore) refreshUnknownKID(ctx context.Context) *keySet {
	if s.jwksURL == "" {
		return s.cur.Load()
	}
	if done := s.requestFetch(time.Now()); done != nil {
		wait := time.NewTimer(s.unknownWait)
		defer wait.Stop()
		select {
		case <-done:
		case <-ctx.Done():
		case <-wait.C:
		}
	}
	return s.cur.Load()
}

// requestFetch asks for a fetch of the JWKS URL on behalf of an unknown
// kid. It returns nil if the budget is spent or the store is closed, else
// a channel closed when the fetch that serves the request has ended. While
// a failed fetch waits for its retry, the retry serves the request.
func (s *keyStore) requestFetch(now time.Time) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.unknownAllowed(now) {
		return nil
	}
	if s.waiters == nil {
		s.waiters = make(chan struct{})
	}
	if s.failures == 0 || !now.Before(s.nextURL) {
		s.startLocked()
	}
	return s.waiters
}

// unknownAllowed reports whether an unknown kid may cause a fetch at now.
// Only fetches that got an answer spend the budget.
func (s *keyStore) unknownAllowed(now time.Time) bool {
	return s.unknownSpent.IsZero() || now.Sub(s.unknownSpent) >= s.unknownEvery
}

// tick is the timer's function: a source is due.
func (s *keyStore) tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.startLocked()
}

// startLocked starts the refresh goroutine, or asks the running one for
// one more run.
func (s *keyStore) startLocked() {
	switch {
	case s.closed:
	case s.running:
		s.again = true
	default:
		s.running = true
		s.wg.Add(1)
		go s.run()
	}
}

// scheduleLocked arms the timer for the next source that falls due.
func (s *keyStore) scheduleLocked() {
	var next time.Time
	if len(s.fileStamps) > 0 {
		next = s.nextFiles
	}
	if s.jwksURL != "" && (next.IsZero() || s.nextURL.Before(next)) {
		next = s.nextURL
	}
	if s.closed || next.IsZero() {
		return
	}
	d := max(time.Until(next), 0)
	if s.timer == nil {
		s.timer = time.AfterFunc(d, s.tick)
	} else {
		s.timer.Reset(d)
	}
}

// refreshPlan is what one run of the refresh goroutine does.
type refreshPlan struct {
	files   bool          // check the key files
	fetch   bool          // fetch the JWKS URL
	unknown bool          // the fetch serves unknown kids: an answer spends their budget
	done    chan struct{} // closed when the run ends; nil if nobody waits
}

// run refreshes until no more runs are asked for.
func (s *keyStore) run() {
	defer s.wg.Done()
	for {
		p := s.plan(time.Now())
		changed := p.files && s.reloadFiles()
		var answered bool
		if p.fetch {
			var urlChanged bool
			urlChanged, answered = s.fetchURL(s.ctx)
			changed = changed || urlChanged
		}
		if !s.finish(p, changed, answered) {
			return
		}
	}
}

// plan decides what a run does and takes the callers it will release.
func (s *keyStore) plan(now time.Time) refreshPlan {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.again = false
	p := refreshPlan{files: len(s.fileStamps) > 0 && !now.Before(s.nextFiles)}
	if s.jwksURL == "" {
		return p
	}
	due := !now.Before(s.nextURL)
	p.fetch = due
	if s.waiters != nil {
		switch {
		case !s.unknownAllowed(now):
			// A fetch answered since they asked: they have its keys.
			p.done, s.waiters = s.waiters, nil
		case s.failures > 0 && !due:
			// They wait for the retry.
		default:
			p.fetch, p.unknown = true, true
			p.done, s.waiters = s.waiters, nil
		}
	}
	return p
}

// finish records the end of a run, publishes changed keys, releases the
// run's callers and either claims one more run (true) or arms the timer.
func (s *keyStore) finish(p refreshPlan, changed, answered bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if p.files {
		s.nextFiles = now.Add(s.fileEvery)
	}
	if p.unknown && answered {
		s.unknownSpent = now
	}
	if changed {
		s.publish()
	}
	if p.done != nil {
		close(p.done)
	}
	if s.again && !s.closed {
		return true
	}
	s.running = false
	s.scheduleLocked()
	return false
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

// fetchURL fetches the JWKS URL within fetchTimeout and schedules the next
// fetch: after urlEvery on success, after a backoff on failure (1 s,
// doubling up to retryMax). It reports whether the URL keys changed and
// whether the server answered. A failure keeps the last good keys and logs
// one warning, unless the store is closing.
func (s *keyStore) fetchURL(ctx context.Context) (changed, answered bool) {
	ctx, cancel := context.WithTimeout(ctx, s.fetchTimeout)
	defer cancel()
	keys, answered, err := fetchJWKS(ctx, s.client, s.jwksURL)
	s.mu.Lock()
	if err != nil {
		s.failures++
		s.nextURL = time.Now().Add(retryDelay(s.failures, s.retryMax))
	} else {
		s.failures = 0
		s.nextURL = time.Now().Add(s.urlEvery)
	}
	closing := s.closed
	s.mu.Unlock()
	switch {
	case err != nil && !closing:
		s.logger.LogAttrs(ctx, slog.LevelWarn, "jwks_refresh_failed", slog.String("error", err.Error()))
	case err == nil && !sameKeys(keys, s.urlKeys):
		s.urlKeys = keys
		s.logger.LogAttrs(ctx, slog.LevelInfo, "jwks_refreshed", slog.Int("keys", len(keys)))
		return true, answered
	}
	return false, answered
}

// retryDelay is the wait before the retry that follows the given number of
// consecutive failures: 1 s, doubling up to limit.
func retryDelay(failures int, limit time.Duration) time.Duration {
	d := time.Second
	for i := 1; i < failures && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// close stops the refresher: no run starts any more, a fetch in progress is
// cancelled, and close returns once the refresh goroutine has. Callers
// waiting for a fetch are released.
func (s *keyStore) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.timer != nil {
			s.timer.Stop()
		}
		if s.waiters != nil {
			close(s.waiters)
			s.waiters = nil
		}
	}
	s.mu.Unlock()
	s.cancel()
	s.wg.Wait()
}

// Close stops refreshing keys: it cancels a key fetch in progress and waits
// for the refresher to return. The Authenticator goes on verifying tokens
// with the keys it has. Close may be called more than once.
func (a *Authenticator) Close() {
	a.keys.close()
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
