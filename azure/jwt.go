package azure

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"
)

// claims are the parts of an Entra ID access token that aside reads. The
// signature is not checked: the token is the server's to verify, and aside
// only needs the user name that goes with it.
type claims struct {
	// oid is the object ID of the principal, the user name of AUTH.
	oid string
	// exp is the expiry ("exp", seconds since the epoch), zero when absent.
	exp time.Time
}

// errNotJWT is wrapped when a token does not have the shape of a JWT. Its
// message says nothing about the token's content.
var errNotJWT = errors.New("not a JWT (header.payload.signature with a base64url JSON payload)")

// parseClaims reads the payload of a JWT. Errors describe what is wrong
// without quoting any part of the token.
func parseClaims(token string) (claims, error) {
	header, rest, ok := strings.Cut(token, ".")
	if !ok || header == "" {
		return claims{}, errNotJWT
	}
	payload, signature, ok := strings.Cut(rest, ".")
	if !ok || payload == "" || strings.Contains(signature, ".") {
		return claims{}, errNotJWT
	}
	// base64url without padding is the JWT encoding; some issuers pad anyway.
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(payload, "="))
	if err != nil {
		return claims{}, errNotJWT
	}
	var body struct {
		OID any `json:"oid"`
		Exp any `json:"exp"`
	}
	if err := json.Unmarshal(raw, &body); err != nil {
		return claims{}, errNotJWT
	}
	var c claims
	if s, ok := body.OID.(string); ok {
		c.oid = s
	}
	if c.oid == "" {
		return claims{}, ErrNoOID
	}
	if strings.ContainsAny(c.oid, " \t\r\n") {
		return claims{}, errors.New("its oid claim contains white space, which a Redis user name cannot contain")
	}
	if f, ok := body.Exp.(float64); ok && f > 0 && f < 1<<40 {
		c.exp = time.Unix(int64(f), 0)
	}
	return c, nil
}
