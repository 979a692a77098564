package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"strings"
)

// maxJWKSRedirects bounds the redirects followed to the JWK Set.
const maxJWKSRedirects = 5

// ErrInsecureJWKSURL is returned by CheckJWKSURL (and New) for an http://
// JWKS URL that was not explicitly allowed.
var ErrInsecureJWKSURL = errors.New("must use https:// (keys fetched over plain http can be replaced by anyone on the path)")

// CheckJWKSURL reports whether rawURL may be used as Config.JWKSURL: an
// absolute https:// URL with a host, or http:// if allowHTTP is set. Its
// errors do not repeat the URL.
func CheckJWKSURL(rawURL string, allowHTTP bool) error {
	u, err := url.Parse(rawURL)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Hostname() == "" {
		return errors.New("not an absolute URL with a host")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return ErrInsecureJWKSURL
	default:
		return fmt.Errorf("scheme %.10q: %w", u.Scheme, ErrInsecureJWKSURL)
	}
	if u.User != nil {
		return errors.New("must not carry credentials")
	}
	return nil
}

// jwksClient returns a copy of c (nil: a client with DefaultHTTPTimeout)
// whose redirects are checked by checkJWKSRedirect before c's own check.
func jwksClient(c *http.Client) *http.Client {
	if c == nil {
		c = &http.Client{Timeout: DefaultHTTPTimeout}
	}
	cc := *c
	own := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if err := checkJWKSRedirect(req, via); err != nil {
			return err
		}
		if own != nil {
			return own(req, via)
		}
		return nil
	}
	return &cc
}

// redirectRefused is a redirect the JWKS client did not follow. The server
// answered, so the fetch counts as answered.
type redirectRefused struct{ reason string }

func (e *redirectRefused) Error() string { return "jwks: redirect refused: " + e.reason }

// checkJWKSRedirect allows a redirect only to the host of the first
// request, never from https to http, and at most maxJWKSRedirects times.
func checkJWKSRedirect(req *http.Request, via []*http.Request) error {
	first, prev := via[0].URL, via[len(via)-1].URL
	switch {
	case len(via) >= maxJWKSRedirects:
		return &redirectRefused{"too many redirects"}
	case prev.Scheme == "https" && req.URL.Scheme != "https":
		return &redirectRefused{"https to " + req.URL.Scheme}
	case !strings.EqualFold(req.URL.Hostname(), first.Hostname()):
		return &redirectRefused{"to another host"}
	}
	return nil
}

// fetchJWKS gets and parses the JWK Set at rawURL. answered reports whether
// the server sent an HTTP answer (any status, or a redirect that was
// refused), as opposed to a fetch cut off by the network or by ctx.
func fetchJWKS(ctx context.Context, client *http.Client, rawURL string) (keys []publicKey, answered bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, false, fmt.Errorf("jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		// On a refused redirect, Do returns the redirect with its body closed.
		var refused *redirectRefused
		return nil, errors.As(err, &refused), fmt.Errorf("jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10)) // lets the connection be reused
		return nil, true, fmt.Errorf("jwks fetch: HTTP %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, false, fmt.Errorf("jwks read: %w", err)
	}
	keys, err = parseJWKS(body)
	return keys, true, err
}

// jsonWebKey holds the JWK members this package reads (RFC 7517, 7518, 8037).
type jsonWebKey struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"`
	E   string `json:"e"`
}

// parseJWKS parses a JWK Set. Keys that are not signature keys of a
// supported type are skipped; symmetric ("oct") keys are never used. It
// fails if no key is usable.
func parseJWKS(data []byte) ([]publicKey, error) {
	if len(data) > maxJWKSBytes {
		return nil, errors.New("jwks: document too large")
	}
	var doc struct {
		Keys []jsonWebKey `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	var keys []publicKey
	for _, j := range doc.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("jwks: no usable signature key")
	}
	return keys, nil
}

func (j jsonWebKey) publicKey() (publicKey, error) {
	b64 := base64.RawURLEncoding.Strict()
	switch j.Kty {
	case "OKP":
		if j.Crv != "Ed25519" || (j.Alg != "" && j.Alg != "EdDSA" && j.Alg != "Ed25519") {
			return publicKey{}, errors.New("unsupported OKP key")
		}
		x, err := b64.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return publicKey{}, errors.New("bad Ed25519 key")
		}
		return publicKey{kid: j.Kid, alg: "EdDSA", key: ed25519.PublicKey(x)}, nil
	case "EC":
		var (
			curve elliptic.Curve
			alg   string
		)
		switch j.Crv {
		case "P-256":
			curve, alg = elliptic.P256(), "ES256"
		case "P-384":
			curve, alg = elliptic.P384(), "ES384"
		case "P-521":
			curve, alg = elliptic.P521(), "ES512"
		default:
			return publicKey{}, errors.New("unsupported curve")
		}
		if j.Alg != "" && j.Alg != alg {
			return publicKey{}, errors.New("alg does not match curve")
		}
		size := (curve.Params().BitSize + 7) / 8
		x, errX := b64.DecodeString(j.X)
		y, errY := b64.DecodeString(j.Y)
		if errX != nil || errY != nil || len(x) != size || len(y) != size {
			return publicKey{}, errors.New("bad EC coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return publicKey{}, err
		}
		return publicKey{kid: j.Kid, alg: alg, key: pub}, nil
	case "RSA":
		alg := j.Alg
		switch alg {
		case "":
			alg = "RS256"
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		default:
			return publicKey{}, errors.New("unsupported RSA alg")
		}
		n, errN := b64.DecodeString(j.N)
		e, errE := b64.DecodeString(j.E)
		if errN != nil || errE != nil || len(e) == 0 || len(e) > 4 {
			return publicKey{}, errors.New("bad RSA key")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 {
			return publicKey{}, errors.New("weak RSA key")
		}
		return publicKey{kid: j.Kid, alg: alg, key: pub}, nil
	}
	return publicKey{}, errors.New("unsupported key type")
}
