package authorizer

import (
	"cmp"
	"context"
	"crypto"
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
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// The OIDC settings' defaults.
const (
	// DefaultPartyClaim is the claim that names the party a token acts as.
	DefaultPartyClaim = "ferry_party"
	// DefaultRoleClaim is the claim that holds the token's role.
	DefaultRoleClaim = "ferry_role"
)

// How the verifier keeps the issuer's keys.
const (
	// KeysTTL is how long fetched keys are used before they are fetched
	// again.
	KeysTTL = time.Hour
	// RefetchInterval is how often, at most, a token signed with a key the
	// verifier does not hold makes it fetch the keys again (the issuer may
	// have rotated them).
	RefetchInterval = time.Minute
	// Leeway is the clock skew allowed on exp, nbf and iat.
	Leeway = 30 * time.Second
	// maxDocument bounds the discovery document and the key set.
	maxDocument = 1 << 20
	// fetchTimeout bounds one request to the issuer.
	fetchTimeout = 5 * time.Second
)

// TokenKeyIDPrefix starts the keyId of an identity a token gave:
// "jwt:" and the token's subject.
const TokenKeyIDPrefix = "jwt:"

// algorithms are the signature algorithms a token may use; each needs a
// key of its type (checked by keyFits).
var algorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// OIDC configures the authorizer's JWT credentials: access tokens of an
// OpenID Connect issuer. An empty Issuer turns them off.
type OIDC struct {
	// Issuer is the issuer's URL, exactly as tokens' iss claim has it. Its
	// keys are found through {Issuer}/.well-known/openid-configuration.
	// It must be https, or http on a loopback address (local tests).
	Issuer string
	// Audience must be one of a token's aud values.
	Audience string
	// PartyClaim names the claim holding the party (DefaultPartyClaim);
	// "sub" or "client_id" make an OAuth client's id its party.
	PartyClaim string
	// RoleClaim names the claim holding the role, partner or operator
	// (DefaultRoleClaim); a token without it is a partner's.
	RoleClaim string
}

// WithDefaults fills the claim names left empty.
func (o OIDC) WithDefaults() OIDC {
	if o.PartyClaim == "" {
		o.PartyClaim = DefaultPartyClaim
	}
	if o.RoleClaim == "" {
		o.RoleClaim = DefaultRoleClaim
	}
	return o
}

// Validate reports every problem of an enabled configuration at once.
func (o OIDC) Validate() error {
	if o.Issuer == "" {
		return nil
	}
	var errs []error
	if err := fetchable(o.Issuer); err != nil {
		errs = append(errs, fmt.Errorf("FERRY_OIDC_ISSUER: %w", err))
	}
	if o.Audience == "" {
		errs = append(errs, errors.New("FERRY_OIDC_AUDIENCE is not set (an issuer needs an audience)"))
	}
	return errors.Join(errs...)
}

// fetchable checks that the verifier may fetch from raw: an https URL, or
// http to a loopback host. TLS is always verified (the default transport).
func fetchable(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && loopback(u.Hostname()):
		return nil
	default:
		return fmt.Errorf("%q: want https (plain http only on loopback)", raw)
	}
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Verifier checks an issuer's JWT access tokens and maps them to
// identities. It fetches the issuer's keys on first use, keeps them for
// KeysTTL, and fetches them again, at most once per RefetchInterval, for a
// token signed with a key it does not hold. It is safe for concurrent use.
type Verifier struct {
	cfg    OIDC
	client *http.Client
	now    func() time.Time

	mu      sync.Mutex
	keys    map[string]jwk // by kid
	fetched time.Time      // when keys were fetched; zero: never
	tried   time.Time      // the last fetch, failed or not
}

// NewVerifier returns a verifier of cfg's tokens (cfg must be valid and
// enabled). client is nil for http.DefaultClient's transport; now nil for
// time.Now.
func NewVerifier(cfg OIDC, client *http.Client, now func() time.Time) *Verifier {
	if client == nil {
		client = &http.Client{Timeout: fetchTimeout}
	}
	if now == nil {
		now = time.Now
	}
	return &Verifier{cfg: cfg.WithDefaults(), client: client, now: now}
}

// Identity verifies token and returns whom it names: the party claim's
// party, the role claim's role, and TokenKeyIDPrefix and the subject as ID.
// It returns a KindUnauthorized error, whose message says why and may be
// shown to the caller, for a token that is not good (bad signature, unknown
// key, expired, wrong issuer or audience, no valid party, a role other than
// partner or operator), and a KindUnavailable error when the issuer's keys
// cannot be fetched.
func (v *Verifier) Identity(ctx context.Context, token string) (store.APIKey, error) {
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) { return v.key(ctx, t) },
		jwt.WithValidMethods(algorithms), jwt.WithIssuer(v.cfg.Issuer), jwt.WithAudience(v.cfg.Audience),
		jwt.WithExpirationRequired(), jwt.WithIssuedAt(), jwt.WithLeeway(Leeway), jwt.WithTimeFunc(v.now))
	if err != nil {
		if domain.KindOf(err) == domain.KindUnavailable {
			return store.APIKey{}, err
		}
		return store.APIKey{}, domain.Errorf(domain.KindUnauthorized, "%v", err)
	}
	party, _ := claims[v.cfg.PartyClaim].(string)
	if !domain.ValidParty(party) {
		return store.APIKey{}, domain.Errorf(domain.KindUnauthorized, "claim %s: not a party name", v.cfg.PartyClaim)
	}
	role := store.RolePartner
	if r, ok := claims[v.cfg.RoleClaim]; ok {
		if r != store.RolePartner && r != store.RoleOperator {
			return store.APIKey{}, domain.Errorf(domain.KindUnauthorized, "claim %s: want %s or %s", v.cfg.RoleClaim, store.RolePartner, store.RoleOperator)
		}
		role = r.(string)
	}
	sub, _ := claims["sub"].(string)
	return store.APIKey{ID: TokenKeyIDPrefix + cmp.Or(sub, party), Party: party, Role: role, Label: "token"}, nil
}

// key returns the public key that should have signed t, fetching the
// issuer's keys when they are stale (every time, until a fetch succeeds:
// without keys, no token can be checked), or when t names a key not held
// and the last attempt is older than RefetchInterval (so that tokens of
// made-up key ids cannot make it hammer the issuer).
func (v *Verifier) key(ctx context.Context, t *jwt.Token) (crypto.PublicKey, error) {
	kid, _ := t.Header["kid"].(string)
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	stale := v.fetched.IsZero() || now.Sub(v.fetched) >= KeysTTL
	if _, held := v.pick(kid); stale || (!held && now.Sub(v.tried) >= RefetchInterval) {
		v.tried = now
		keys, err := v.fetch(ctx)
		if err != nil {
			return nil, domain.Errorf(domain.KindUnavailable, "issuer's keys: %v", err)
		}
		v.keys, v.fetched = keys, now
	}
	k, ok := v.pick(kid)
	if !ok {
		return nil, fmt.Errorf("no key %q in the issuer's key set", kid)
	}
	alg := t.Method.Alg()
	if (k.Alg != "" && k.Alg != alg) || !keyFits(k.pub, alg) {
		return nil, fmt.Errorf("key %q is not a key for %s", kid, alg)
	}
	return k.pub, nil
}

// pick returns the held key kid, or the only key held when kid is "".
func (v *Verifier) pick(kid string) (jwk, bool) {
	if kid == "" && len(v.keys) == 1 {
		for _, k := range v.keys {
			return k, true
		}
	}
	k, ok := v.keys[kid]
	return k, ok && kid != ""
}

// keyFits reports whether k is of the type alg signs with.
func keyFits(k crypto.PublicKey, alg string) bool {
	switch k := k.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		curves := map[string]elliptic.Curve{"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521()}
		return curves[alg] == k.Curve
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// fetch reads the issuer's discovery document, then the key set it names.
func (v *Verifier) fetch(ctx context.Context) (map[string]jwk, error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := v.get(ctx, strings.TrimSuffix(v.cfg.Issuer, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, err
	}
	if disc.Issuer != v.cfg.Issuer {
		return nil, fmt.Errorf("discovery document: issuer %q, want %q", disc.Issuer, v.cfg.Issuer)
	}
	if err := fetchable(disc.JWKSURI); err != nil {
		return nil, fmt.Errorf("discovery document: jwks_uri: %w", err)
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := v.get(ctx, disc.JWKSURI, &set); err != nil {
		return nil, err
	}
	keys := map[string]jwk{}
	for _, k := range set.Keys {
		if pub, ok := k.public(); ok {
			k.pub = pub
			keys[k.Kid] = k
		}
	}
	return keys, nil
}

// get fetches a JSON document.
func (v *Verifier) get(ctx context.Context, u string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxDocument))
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if err := json.Unmarshal(b, into); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// jwk is a JSON Web Key (RFC 7517) of the types tokens are verified with.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`

	pub crypto.PublicKey // the parsed key, once fetched
}

// public returns the key, or false for a key that is not a signature key
// of a type the verifier knows, or is malformed.
func (k jwk) public() (crypto.PublicKey, bool) {
	if k.Use != "" && k.Use != "sig" {
		return nil, false
	}
	b := func(s string) []byte { d, _ := base64.RawURLEncoding.DecodeString(s); return d }
	switch k.Kty {
	case "RSA":
		n, e := new(big.Int).SetBytes(b(k.N)), new(big.Int).SetBytes(b(k.E))
		if n.BitLen() < 2048 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31 {
			return nil, false
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, true
	case "EC":
		curves := map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}
		c, ok := curves[k.Crv]
		if !ok {
			return nil, false
		}
		size := (c.Params().BitSize + 7) / 8
		x, y := b(k.X), b(k.Y)
		if len(x) != size || len(y) != size {
			return nil, false
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(c, append(append([]byte{4}, x...), y...))
		return pub, err == nil
	case "OKP":
		x := b(k.X)
		if k.Crv != "Ed25519" || len(x) != ed25519.PublicKeySize {
			return nil, false
		}
		return ed25519.PublicKey(x), true
	}
	return nil, false
}
