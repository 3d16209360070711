package authorizer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// issuer serves an OIDC discovery document and a key set over httptest,
// counting the key set's fetches. (A unit-level stand-in: the integration
// tests run a real issuer, Ory Hydra.)
type issuer struct {
	srv *httptest.Server

	mu       sync.Mutex
	keys     []map[string]string
	fetches  int // successful ones
	attempts int
	down     bool
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	is := &issuer{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/jwks.json"})
	})
	mux.HandleFunc("GET /jwks.json", func(w http.ResponseWriter, r *http.Request) {
		is.mu.Lock()
		defer is.mu.Unlock()
		is.attempts++
		if is.down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		is.fetches++
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": is.keys})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

// publish adds key's public half to the key set as kid.
func (is *issuer) publish(kid string, key crypto.Signer) {
	enc := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	k := map[string]string{"kid": kid, "use": "sig"}
	switch pub := key.Public().(type) {
	case *rsa.PublicKey:
		k["kty"], k["alg"], k["n"], k["e"] = "RSA", "RS256", enc(pub.N.Bytes()), enc(big.NewInt(int64(pub.E)).Bytes())
	case *ecdsa.PublicKey:
		b, _ := pub.Bytes()
		k["kty"], k["crv"], k["x"], k["y"] = "EC", "P-256", enc(b[1:33]), enc(b[33:])
	case ed25519.PublicKey:
		k["kty"], k["crv"], k["x"] = "OKP", "Ed25519", enc(pub)
	}
	is.mu.Lock()
	is.keys = append(is.keys, k)
	is.mu.Unlock()
}

func (is *issuer) fetchCount() int {
	is.mu.Lock()
	defer is.mu.Unlock()
	return is.fetches
}

// sign makes a token of claims signed by key (of method's type) as kid
// ("" for none) with method.
func sign(t *testing.T, method jwt.SigningMethod, key any, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerifier(t *testing.T) {
	is := newIssuer(t)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	forger, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.publish("rsa-1", rsaKey)
	is.publish("ec-1", ecKey)
	is.publish("ed-1", edKey)

	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	v := NewVerifier(OIDC{Issuer: is.srv.URL, Audience: "ferry"}, is.srv.Client(), func() time.Time { return now })
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"iss": is.srv.URL, "aud": []string{"other", "ferry"}, "sub": "client-7", "ferry_party": "org-a",
			"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Unix(),
		}
		if edit != nil {
			edit(c)
		}
		return c
	}
	rs := func(edit func(jwt.MapClaims)) string {
		return sign(t, jwt.SigningMethodRS256, rsaKey, "rsa-1", claims(edit))
	}

	good := []struct {
		name, token string
		want        store.APIKey
	}{
		{"RS256", rs(nil), store.APIKey{ID: "jwt:client-7", Party: "org-a", Role: store.RolePartner, Label: "token"}},
		{"ES256", sign(t, jwt.SigningMethodES256, ecKey, "ec-1", claims(nil)), store.APIKey{ID: "jwt:client-7", Party: "org-a", Role: store.RolePartner, Label: "token"}},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, edKey, "ed-1", claims(nil)), store.APIKey{ID: "jwt:client-7", Party: "org-a", Role: store.RolePartner, Label: "token"}},
		{"operator", rs(func(c jwt.MapClaims) { c["ferry_role"] = "operator" }), store.APIKey{ID: "jwt:client-7", Party: "org-a", Role: store.RoleOperator, Label: "token"}},
		{"one audience, a string", rs(func(c jwt.MapClaims) { c["aud"] = "ferry" }), store.APIKey{ID: "jwt:client-7", Party: "org-a", Role: store.RolePartner, Label: "token"}},
		{"expired within the leeway", rs(func(c jwt.MapClaims) { c["exp"] = now.Add(-Leeway / 2).Unix() }), store.APIKey{ID: "jwt:client-7", Party: "org-a", Role: store.RolePartner, Label: "token"}},
	}
	for _, tc := range good {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			got, err := v.Identity(context.Background(), tc.token)
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}

	bad := []struct{ name, token string }{
		{"expired", rs(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })},
		{"without exp", rs(func(c jwt.MapClaims) { delete(c, "exp") })},
		{"not yet valid", rs(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })},
		{"issued in the future", rs(func(c jwt.MapClaims) { c["iat"] = now.Add(time.Minute).Unix() })},
		{"of another issuer", rs(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })},
		{"for another audience", rs(func(c jwt.MapClaims) { c["aud"] = "other" })},
		{"without an audience", rs(func(c jwt.MapClaims) { delete(c, "aud") })},
		{"without a party", rs(func(c jwt.MapClaims) { delete(c, "ferry_party") })},
		{"with a bad party", rs(func(c jwt.MapClaims) { c["ferry_party"] = "org a/../b" })},
		{"with a party that is not a string", rs(func(c jwt.MapClaims) { c["ferry_party"] = 7 })},
		{"with an unknown role", rs(func(c jwt.MapClaims) { c["ferry_role"] = "admin" })},
		{"forged: right kid, wrong key", sign(t, jwt.SigningMethodRS256, forger, "rsa-1", claims(nil))},
		{"of a key type the kid is not", sign(t, jwt.SigningMethodRS256, rsaKey, "ec-1", claims(nil))},
		{"of an algorithm the key is not published for", sign(t, jwt.SigningMethodRS512, rsaKey, "rsa-1", claims(nil))},
		{"HS256 with the public key as secret", sign(t, jwt.SigningMethodHS256, rsaKey.N.Bytes(), "rsa-1", claims(nil))},
		{"unsigned", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "rsa-1", claims(nil))},
		{"without a kid, the issuer having several keys", sign(t, jwt.SigningMethodRS256, rsaKey, "", claims(nil))},
		{"not a JWT", "fry_looks-like-a-key"},
	}
	for _, tc := range bad {
		t.Run("refuses a token "+tc.name, func(t *testing.T) {
			if got, err := v.Identity(context.Background(), tc.token); domain.KindOf(err) != domain.KindUnauthorized {
				t.Errorf("got %+v, %v; want an unauthorized error", got, err)
			}
		})
	}
}

func TestVerifierKeys(t *testing.T) {
	is := newIssuer(t)
	old, _ := rsa.GenerateKey(rand.Reader, 2048)
	rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
	is.publish("old", old)
	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	v := NewVerifier(OIDC{Issuer: is.srv.URL, Audience: "ferry", PartyClaim: "sub"}, is.srv.Client(), func() time.Time { return now })
	token := func(key *rsa.PrivateKey, kid string) string {
		return sign(t, jwt.SigningMethodRS256, key, kid, jwt.MapClaims{
			"iss": is.srv.URL, "aud": "ferry", "sub": "lab-a", "exp": now.Add(time.Hour).Unix(),
		})
	}
	ctx := context.Background()

	t.Run("fetches the keys once and keeps them", func(t *testing.T) {
		for range 3 {
			if got, err := v.Identity(ctx, token(old, "old")); err != nil || got.Party != "lab-a" {
				t.Fatalf("got %+v, %v; want lab-a (the sub claim)", got, err)
			}
		}
		if n := is.fetchCount(); n != 1 {
			t.Errorf("%d fetches, want 1", n)
		}
	})
	t.Run("an unknown kid refetches at most once a minute", func(t *testing.T) {
		for range 3 {
			if _, err := v.Identity(ctx, token(rotated, "rotated")); domain.KindOf(err) != domain.KindUnauthorized {
				t.Fatalf("unknown kid: %v, want unauthorized", err)
			}
		}
		if n := is.fetchCount(); n != 1 {
			t.Errorf("%d fetches within the minute, want 1", n)
		}
		is.publish("rotated", rotated)
		now = now.Add(RefetchInterval)
		if _, err := v.Identity(ctx, token(rotated, "rotated")); err != nil {
			t.Errorf("a rotated key a minute on: %v, want it fetched and accepted", err)
		}
		if n := is.fetchCount(); n != 2 {
			t.Errorf("%d fetches, want 2", n)
		}
	})
	t.Run("a fetch failure is an outage, not a refusal", func(t *testing.T) {
		is.mu.Lock()
		is.down = true
		is.mu.Unlock()
		now = now.Add(KeysTTL)
		if _, err := v.Identity(ctx, token(old, "old")); domain.KindOf(err) != domain.KindUnavailable {
			t.Errorf("issuer down: %v, want unavailable", err)
		}
		is.mu.Lock()
		is.down = false
		is.mu.Unlock()
		if _, err := v.Identity(ctx, token(old, "old")); err != nil {
			t.Errorf("issuer back: %v", err)
		}
	})
	t.Run("made-up kids do not make it hammer an issuer that is down", func(t *testing.T) {
		now = now.Add(RefetchInterval)
		is.mu.Lock()
		is.down, is.attempts = true, 0
		is.mu.Unlock()
		for range 3 {
			_, _ = v.Identity(ctx, token(rotated, "made-up"))
		}
		if _, err := v.Identity(ctx, token(old, "old")); err != nil {
			t.Errorf("a held key, the issuer down: %v, want it accepted", err)
		}
		is.mu.Lock()
		defer is.mu.Unlock()
		is.down = false
		if is.attempts != 1 {
			t.Errorf("%d attempts within the minute, want 1", is.attempts)
		}
	})
	t.Run("the discovery document must name the issuer", func(t *testing.T) {
		other := NewVerifier(OIDC{Issuer: is.srv.URL + "/", Audience: "ferry"}, is.srv.Client(), nil)
		if _, err := other.Identity(ctx, token(old, "old")); domain.KindOf(err) != domain.KindUnavailable {
			t.Errorf("issuer mismatch: %v, want unavailable", err)
		}
	})
}

func TestOIDCValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  OIDC
		want string // "" for valid
	}{
		{OIDC{}, ""},
		{OIDC{Issuer: "https://id.example/realms/ferry", Audience: "ferry"}, ""},
		{OIDC{Issuer: "http://127.0.0.1:4444", Audience: "ferry"}, ""},
		{OIDC{Issuer: "http://localhost:4444/", Audience: "ferry"}, ""},
		{OIDC{Issuer: "http://id.example", Audience: "ferry"}, "plain http only on loopback"},
		{OIDC{Issuer: "id.example", Audience: "ferry"}, "not an absolute URL"},
		{OIDC{Issuer: "https://id.example"}, "FERRY_OIDC_AUDIENCE"},
	} {
		err := tc.cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: Validate = %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
