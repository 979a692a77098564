package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/greeter/greeter/identity"
)

// Verify checks a bearer token and returns the identity it names and
// ResultVerified or ResultCached. Its error is an Unauthenticated status
// error. It does not check a certificate binding (Config.RequireTokenCertMatch
// needs the call's connection; Authenticate checks it).
func (a *Authenticator) Verify(ctx context.Context, token string) (identity.Identity, string, error) {
	tok, result, err := a.verifyToken(ctx, token)
	return tok.id, result, err
}

// verifyToken is Verify, also returning the token's certificate binding.
func (a *Authenticator) verifyToken(ctx context.Context, token string) (verifiedToken, string, error) {
	now := time.Now()
	ks := a.keys.current()
	sum := sha256.Sum256([]byte(token))
	if e, ok := a.cache.Get(sum, now); ok {
		if e.gen == ks.gen && now.Before(e.until) {
			return e.tok.clone(), ResultCached, nil
		}
		a.cache.Remove(sum)
	}
	tok, exp, gen, f := a.verify(ctx, ks, token, now)
	if f != nil {
		return verifiedToken{}, f.reason, f
	}
	until := exp.Add(a.cfg.Leeway)
	if ttl := now.Add(a.cfg.CacheTTL); ttl.Before(until) {
		until = ttl
	}
	a.cache.Add(sum, cachedToken{tok: tok.clone(), until: until, gen: gen}, now)
	return tok, ResultVerified, nil
}

// clone returns a copy of t that shares no slice with it.
func (t verifiedToken) clone() verifiedToken {
	t.id.Scopes = slices.Clone(t.id.Scopes)
	return t
}

// verify parses and checks token with the key set ks (refreshed for an
// unknown kid). It returns what the token establishes, the expiry and the
// generation of the key set that verified it.
func (a *Authenticator) verify(ctx context.Context, ks *keySet, token string, now time.Time) (verifiedToken, time.Time, uint64, *failure) {
	used := ks
	keyfunc := func(t *jwt.Token) (any, error) {
		if typ, ok := t.Header["typ"]; ok && !acceptedType(typ) {
			return nil, errWrongType
		}
		if _, ok := t.Header["crit"]; ok {
			return nil, errMalformed
		}
		alg := t.Method.Alg()
		if kidValue, ok := t.Header["kid"]; ok {
			kid, isString := kidValue.(string)
			if !isString {
				return nil, errUnknownKID
			}
			k, found := used.byKID[kid]
			if !found {
				used = a.keys.refreshUnknownKID(ctx)
				if k, found = used.byKID[kid]; !found {
					return nil, errUnknownKID
				}
			}
			if k.alg != alg {
				return nil, errAlgNotAllowed
			}
			return k.key, nil
		}
		var set jwt.VerificationKeySet
		for _, k := range used.keys {
			if k.alg == alg {
				set.Keys = append(set.Keys, k.key)
			}
		}
		switch len(set.Keys) {
		case 0:
			return nil, errAlgNotAllowed
		case 1:
			return set.Keys[0], nil
		}
		return set, nil
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(a.algs),
		jwt.WithIssuer(a.cfg.Issuer),
		jwt.WithAudience(a.cfg.Audience...),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(a.cfg.Leeway),
		jwt.WithStrictDecoding(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var claims tokenClaims
	tok, err := parser.ParseWithClaims(token, &claims, keyfunc)
	if err != nil {
		return verifiedToken{}, time.Time{}, 0, classify(err, tok, a.algs)
	}
	if claims.Subject == "" {
		return verifiedToken{}, time.Time{}, 0, errMissingClaim
	}
	exp := claims.ExpiresAt.Time
	issued := now
	if claims.IssuedAt != nil {
		issued = claims.IssuedAt.Time
	}
	if exp.Sub(issued) > a.cfg.MaxTokenLifetime {
		return verifiedToken{}, time.Time{}, 0, errLifetimeTooLong
	}
	// The parser checked iss == Config.Issuer, the one accepted issuer, so
	// jwt:<iss>:<sub> is unambiguous.
	id := identity.Identity{
		Kind:   identity.KindJWT,
		Issuer: a.cfg.Issuer,
		Name:   claims.Subject,
		Scopes: mergeScopes(claims.Scope, claims.Scp),
	}
	return verifiedToken{id: id, x5t: claims.Cnf.x5t()}, exp, used.gen, nil
}

// classify maps a golang-jwt error to a rejection. Any error rejects; the
// order only picks the most useful reason, with signature failures first
// (golang-jwt checks claims only after a good signature).
func classify(err error, tok *jwt.Token, algs []string) *failure {
	var f *failure
	switch {
	case errors.As(err, &f):
		return f
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errMalformed
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		// No or unknown alg.
		return errAlgNotAllowed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		if tok != nil && tok.Method != nil && !slices.Contains(algs, tok.Method.Alg()) {
			return errAlgNotAllowed
		}
		return errBadSignature
	case errors.Is(err, jwt.ErrTokenExpired):
		return errExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errBadIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errBadAudience
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return errMissingClaim
	}
	return errMalformed
}

// acceptedType reports whether a typ header names a JWT or an OAuth access
// token JWT (RFC 9068), compared case-insensitively with or without the
// "application/" prefix.
func acceptedType(v any) bool {
	s, ok := v.(string)
	if !ok {
		return false
	}
	s = strings.ToLower(s)
	s = strings.TrimPrefix(s, "application/")
	return s == "jwt" || s == "at+jwt"
}

// isB64Token reports whether s is an RFC 6750 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isB64Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		if !b64TokenChar[body[i]] {
			return false
		}
	}
	return true
}

// b64TokenChar marks the bytes a b64token body may hold: one table load per
// byte is cheaper than the comparisons, and every RPC checks its token.
var b64TokenChar = func() (t [256]bool) {
	for c := range 256 {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			t[c] = true
		case c == '-', c == '.', c == '_', c == '~', c == '+', c == '/':
			t[c] = true
		}
	}
	return t
}()
