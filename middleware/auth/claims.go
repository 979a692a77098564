package auth

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// tokenClaims are the claims greeterd reads.
type tokenClaims struct {
	jwt.RegisteredClaims
	Scope scopeList `json:"scope,omitempty"`
	Scp   scopeList `json:"scp,omitempty"`
	// Cnf binds the token to a client certificate (RFC 8705).
	Cnf *confirmation `json:"cnf,omitempty"`
}

// confirmation is the "cnf" claim (RFC 7800); greeterd reads only the
// certificate thumbprint of RFC 8705.
type confirmation struct {
	X5tS256 string `json:"x5t#S256,omitempty"`
}

// x5t returns the certificate thumbprint c binds to, or "".
func (c *confirmation) x5t() string {
	if c == nil {
		return ""
	}
	return c.X5tS256
}

// scopeList decodes a space-separated string or an array of strings.
type scopeList []string

func (s *scopeList) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = strings.Fields(str)
		return nil
	}
	var arr []string
	if err := json.Unmarshal(b, &arr); err != nil {
		return errors.New("scope must be a string or an array of strings")
	}
	*s = arr
	return nil
}

func mergeScopes(lists ...scopeList) []string {
	var out []string
	for _, l := range lists {
		for _, s := range l {
			if s != "" && !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}
