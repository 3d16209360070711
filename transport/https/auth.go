package https

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferryhq/ferry/domain"
)

// tokenMargin is how long before its expiry a cached token is dropped.
const tokenMargin = 60 * time.Second

// assertionLifetime is how long a signed JWT is valid.
const assertionLifetime = 5 * time.Minute

// maxTokenResponse bounds a token endpoint's response.
const maxTokenResponse = 64 << 10

// credentials are an endpoint's resolved auth material, and its cached
// access token.
type credentials struct {
	auth     Auth
	apiKey   string
	password string
	secret   string // OAuth 2 client secret
	key      crypto.Signer
	method   jwt.SigningMethod

	mu      sync.Mutex
	token   string
	expires time.Time // zero: not cached
}

// signingKey parses a PEM RSA or EC private key (PKCS #1, SEC 1 or
// PKCS #8) and returns it with its JWS algorithm.
func signingKey(pemBytes []byte) (crypto.Signer, jwt.SigningMethod, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, nil, errors.New("not PEM")
	}
	var key any
	var err error
	switch block.Type {
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	}
	if err != nil {
		return nil, nil, errors.New("not an RSA or EC private key")
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		return k, jwt.SigningMethodRS256, nil
	case *ecdsa.PrivateKey:
		switch k.Curve {
		case elliptic.P256():
			return k, jwt.SigningMethodES256, nil
		case elliptic.P384():
			return k, jwt.SigningMethodES384, nil
		case elliptic.P521():
			return k, jwt.SigningMethodES512, nil
		}
		return nil, nil, errors.New("EC key on an unsupported curve")
	}
	return nil, nil, fmt.Errorf("a %T key: want RSA or EC", key)
}

// assertion signs a fresh JWT: iss, sub, aud, iat, exp (5 minutes), a
// random jti, and kid in the header when the endpoint names one.
func (c *credentials) assertion(now time.Time) (string, error) {
	jti := make([]byte, 16)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	tok := jwt.NewWithClaims(c.method, jwt.RegisteredClaims{
		Issuer:    c.auth.Issuer,
		Subject:   c.auth.Subject,
		Audience:  jwt.ClaimStrings{c.auth.Audience},
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(assertionLifetime)),
		ID:        hex.EncodeToString(jti),
	})
	if c.auth.KeyID != "" {
		tok.Header["kid"] = c.auth.KeyID
	}
	return tok.SignedString(c.key)
}

// dropToken forgets the cached token (the destination refused it).
func (c *credentials) dropToken() {
	c.mu.Lock()
	c.token, c.expires = "", time.Time{}
	c.mu.Unlock()
}

// usesToken reports whether requests carry a token from a token endpoint,
// one that a 401 may mean has been revoked.
func (c *credentials) usesToken() bool {
	return c.auth.Type == AuthOAuth2 || c.auth.Type == AuthJWT && c.auth.TokenURL != ""
}

// authorize sets req's credentials, fetching a token through client when
// none is cached. Errors are *domain.Error.
func (c *credentials) authorize(ctx context.Context, client *http.Client, req *http.Request, maxBody int64) error {
	switch c.auth.Type {
	case AuthAPIKey:
		req.Header.Set(c.auth.Header, c.apiKey)
	case AuthBasic:
		req.SetBasicAuth(c.auth.Username, c.password)
	case AuthJWT, AuthOAuth2:
		if !c.usesToken() {
			a, err := c.assertion(time.Now())
			if err != nil {
				return &domain.Error{Kind: domain.KindInternal, Message: "sign the JWT", Err: err}
			}
			req.Header.Set("Authorization", "Bearer "+a)
			return nil
		}
		tok, err := c.accessToken(ctx, client, maxBody)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

// accessToken returns the cached token while it has more than a minute to
// live, or fetches one from the token URL. OAuth 2 client credentials go
// with HTTP basic (RFC 6749 §2.3.1); a JWT is a client assertion
// (RFC 7523 §2.2: grant_type=client_credentials,
// client_assertion_type=…jwt-bearer, client_assertion=<jwt>), the form
// ReportStream and similar services take. The lock is held while
// fetching, so concurrent requests share one token request.
func (c *credentials) accessToken(ctx context.Context, client *http.Client, maxBody int64) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if c.token != "" && now.Before(c.expires) {
		return c.token, nil
	}
	form := url.Values{"grant_type": {"client_credentials"}}
	if c.auth.Scope != "" {
		form.Set("scope", c.auth.Scope)
	}
	if c.auth.Type == AuthJWT {
		a, err := c.assertion(now)
		if err != nil {
			return "", &domain.Error{Kind: domain.KindInternal, Message: "sign the JWT", Err: err}
		}
		form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
		form.Set("client_assertion", a)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.auth.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", &domain.Error{Kind: domain.KindInvalid, Message: "token request", Err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.auth.Type == AuthOAuth2 {
		req.SetBasicAuth(url.QueryEscape(c.auth.ClientID), url.QueryEscape(c.secret))
	}
	const op = "fetch an access token"
	resp, err := client.Do(req)
	if err != nil {
		return "", classifyErr(op, err, nil)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := classify(op, resp, maxBody, now); err != nil {
		// A token endpoint refusing the client (400 invalid_client,
		// invalid_grant…) is a credential problem, not a bad file.
		if de := (*domain.Error)(nil); errors.As(err, &de) && de.Kind == domain.KindInvalid && resp.StatusCode >= 400 {
			refused := *de
			refused.Kind = domain.KindUnauthorized
			return "", &refused
		}
		return "", err
	}
	var body struct {
		AccessToken string          `json:"access_token"`
		TokenType   string          `json:"token_type"`
		ExpiresIn   json.RawMessage `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenResponse)).Decode(&body); err != nil {
		return "", &domain.Error{Kind: domain.KindUnavailable, Message: op + ": the response is not a JSON token"}
	}
	if body.AccessToken == "" {
		return "", domain.Errorf(domain.KindUnauthorized, "%s: the response has no access_token", op)
	}
	if tt := body.TokenType; tt != "" && !strings.EqualFold(tt, "bearer") {
		return "", domain.Errorf(domain.KindUnauthorized, "%s: token type %q is not bearer", op, sanitize(tt, 32))
	}
	c.token, c.expires = body.AccessToken, time.Time{}
	var secs float64
	if len(body.ExpiresIn) > 0 {
		s := strings.Trim(string(body.ExpiresIn), `"`) // some servers quote it
		if _, err := fmt.Sscan(s, &secs); err == nil && secs > 0 {
			c.expires = now.Add(time.Duration(secs*float64(time.Second)) - tokenMargin)
		}
	}
	tok := c.token
	if !c.expires.After(now) {
		// No lifetime given, or too short to cache: use it this once.
		c.token = ""
	}
	return tok, nil
}
