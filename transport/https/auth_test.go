package https

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferryhq/ferry/domain"
)

// refuse writes status and reports the request refused.
func refuse(w http.ResponseWriter, status int, why string) bool {
	http.Error(w, why, status)
	return false
}

func TestAPIKey(t *testing.T) {
	rc := newReceiver(t, nil)
	rc.check = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Header.Get("X-Key") != "k3y" {
			return refuse(w, 401, "bad key")
		}
		return true
	}
	f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "apiKey", "header": "X-Key", "key": "secret:key"}}`, mapSecrets{"secret:key": "k3y"})
	if _, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("data"), 1<<20)); err != nil {
		t.Fatal(err)
	}
	t.Run("a wrong key fails for good", func(t *testing.T) {
		f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "apiKey", "header": "X-Key", "key": "secret:key"}}`, mapSecrets{"secret:key": "wrong"})
		_, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("data"), 1<<20))
		if k := domain.KindOf(err); k != domain.KindUnauthorized || strings.Contains(err.Error(), "wrong") {
			t.Errorf("error %v: kind %s, want %s without the key", err, k, domain.KindUnauthorized)
		}
	})
}

func TestBasic(t *testing.T) {
	rc := newReceiver(t, nil)
	rc.check = func(w http.ResponseWriter, r *http.Request) bool {
		if u, p, ok := r.BasicAuth(); !ok || u != "ferry" || p != "pa:ss" {
			return refuse(w, 401, "who are you")
		}
		return true
	}
	f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "basic", "username": "ferry", "password": "ssm:/pw"}}`, mapSecrets{"ssm:/pw": "pa:ss"})
	if _, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("data"), 1<<20)); err != nil {
		t.Fatal(err)
	}
}

// tokenServer is an OAuth 2 token endpoint on a receiver: it checks the
// request with verify, issues tok-1, tok-2… valid for an hour, and the
// upload accepts only the latest token.
type tokenServer struct {
	mu      sync.Mutex
	issued  int
	current string
	revoke  bool // refuse the current token once
	refused int
}

func (ts *tokenServer) install(t *testing.T, rc *receiver, verify func(r *http.Request) error) {
	rc.mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := verify(r); err != nil {
			t.Errorf("token request: %v", err)
			http.Error(w, `{"error": "invalid_client"}`, http.StatusUnauthorized)
			return
		}
		ts.mu.Lock()
		ts.issued++
		ts.current = fmt.Sprintf("tok-%d", ts.issued)
		tok := ts.current
		ts.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	})
	rc.check = func(w http.ResponseWriter, r *http.Request) bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		if ts.revoke {
			ts.revoke = false
			ts.current = ""
		}
		if ts.current == "" || r.Header.Get("Authorization") != "Bearer "+ts.current {
			ts.refused++
			return refuse(w, 401, "token refused")
		}
		return true
	}
}

func TestOAuth2ClientCredentials(t *testing.T) {
	rc := newReceiver(t, nil)
	var ts tokenServer
	ts.install(t, rc, func(r *http.Request) error {
		id, secret, ok := r.BasicAuth()
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
		switch {
		case !ok || id != "ferry client" || secret != "s3cr&t":
			return fmt.Errorf("client %q", id)
		case r.PostForm.Get("grant_type") != "client_credentials" || r.PostForm.Get("scope") != "upload":
			return fmt.Errorf("form %v", r.PostForm)
		}
		return nil
	})
	f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "oauth2",
		"tokenURL": "URL/token", "clientId": "ferry client", "clientSecret": "secret:cs", "scope": "upload"}}`, mapSecrets{"secret:cs": "s3cr&t"})
	ctx := context.Background()
	for range 2 {
		if _, err := deliver(ctx, f.tr, f.transfer(t, payload(1, 3000), 1000)); err != nil {
			t.Fatal(err)
		}
	}
	if ts.issued != 1 {
		t.Errorf("two transfers fetched %d tokens, want 1 reused", ts.issued)
	}
	t.Run("a refused token is replaced once and the request repeated", func(t *testing.T) {
		ts.mu.Lock()
		ts.revoke, ts.refused = true, 0
		ts.mu.Unlock()
		st := f.transfer(t, payload(2, 3000), 1000)
		if _, err := deliver(ctx, f.tr, st); err != nil {
			t.Fatal(err)
		}
		if ts.issued != 2 || ts.refused != 1 {
			t.Errorf("%d tokens issued, %d requests refused; want 2 and 1", ts.issued, ts.refused)
		}
		if !bytes.Equal(rc.file(st.ID), payload(2, 3000)) {
			t.Error("the repeated request's body differs from the source")
		}
	})
	t.Run("concurrent transfers share one new token", func(t *testing.T) {
		f.tr.conns["ep"].creds.dropToken()
		before := ts.issued
		var wg sync.WaitGroup
		for range 4 {
			st := f.transfer(t, payload(3, 3000), 1000)
			wg.Go(func() {
				if _, err := deliver(ctx, f.tr, st); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if ts.issued != before+1 {
			t.Errorf("%d tokens fetched by 4 concurrent transfers, want 1", ts.issued-before)
		}
	})
	t.Run("a token refused again fails for good", func(t *testing.T) {
		rc.check = func(w http.ResponseWriter, r *http.Request) bool { return refuse(w, 401, "never") }
		before := ts.issued
		_, err := deliver(ctx, f.tr, f.transfer(t, []byte("x"), 10))
		if k := domain.KindOf(err); k != domain.KindUnauthorized {
			t.Errorf("error %v: kind %s, want %s", err, k, domain.KindUnauthorized)
		}
		if ts.issued != before+1 {
			t.Errorf("%d tokens fetched, want 1", ts.issued-before)
		}
		if strings.Contains(err.Error(), "tok-") {
			t.Errorf("error %q shows a token", err)
		}
	})
}

func TestOAuth2TokenEndpointRefuses(t *testing.T) {
	rc := newReceiver(t, nil)
	rc.mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"error": "invalid_client"}`, http.StatusBadRequest)
	})
	f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "oauth2",
		"tokenURL": "URL/token", "clientId": "c", "clientSecret": "secret:cs"}}`, mapSecrets{"secret:cs": "s"})
	_, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("x"), 10))
	if k := domain.KindOf(err); k != domain.KindUnauthorized || !strings.Contains(err.Error(), "invalid_client") {
		t.Errorf("error %v: kind %s, want %s saying invalid_client", err, k, domain.KindUnauthorized)
	}
}

// keys returns PEM private keys and their public keys, one of each kind
// the jwt auth signs with.
func keys(t *testing.T) []struct {
	name, pem, alg string
	public         crypto.PublicKey
} {
	t.Helper()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(ecKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	enc := func(typ string, der []byte) string {
		return string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}))
	}
	return []struct {
		name, pem, alg string
		public         crypto.PublicKey
	}{
		{"RSA PKCS1", enc("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey)), "RS256", &rsaKey.PublicKey},
		{"RSA PKCS8", enc("PRIVATE KEY", pkcs8), "RS256", &rsaKey.PublicKey},
		{"EC P-256", enc("EC PRIVATE KEY", ecDER), "ES256", &ecKey.PublicKey},
	}
}

// verifyJWT checks s is signed by public with alg and claims what the
// endpoint says.
func verifyJWT(s, alg string, public crypto.PublicKey, aud string) error {
	var claims jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(s, &claims, func(*jwt.Token) (any, error) { return public, nil },
		jwt.WithValidMethods([]string{alg}), jwt.WithIssuer("ferry-iss"), jwt.WithSubject("ferry-sub"),
		jwt.WithAudience(aud), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		return err
	}
	switch {
	case tok.Header["kid"] != "key-1":
		return fmt.Errorf("kid %v", tok.Header["kid"])
	case claims.ID == "":
		return fmt.Errorf("no jti")
	case claims.ExpiresAt.Sub(claims.IssuedAt.Time) != 5*time.Minute:
		return fmt.Errorf("lifetime %s", claims.ExpiresAt.Sub(claims.IssuedAt.Time))
	}
	return nil
}

func TestJWTBearer(t *testing.T) {
	for _, k := range keys(t) {
		t.Run(k.name, func(t *testing.T) {
			rc := newReceiver(t, nil)
			var jtis []string
			rc.check = func(w http.ResponseWriter, r *http.Request) bool {
				bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if !ok {
					return refuse(w, 401, "no bearer")
				}
				if err := verifyJWT(bearer, k.alg, k.public, "https://receiver.example"); err != nil {
					t.Errorf("the upload's JWT: %v", err)
					return refuse(w, 401, "bad JWT")
				}
				var c jwt.RegisteredClaims
				_, _, _ = jwt.NewParser().ParseUnverified(bearer, &c)
				jtis = append(jtis, c.ID)
				return true
			}
			f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "jwt",
				"issuer": "ferry-iss", "subject": "ferry-sub", "audience": "https://receiver.example", "privateKey": "secret:pk", "keyId": "key-1"}}`,
				mapSecrets{"secret:pk": k.pem})
			for range 2 {
				if _, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("data"), 10)); err != nil {
					t.Fatal(err)
				}
			}
			if len(jtis) != 2 || jtis[0] == jtis[1] {
				t.Errorf("jti %v: want two different", jtis)
			}
		})
	}
}

func TestJWTClientAssertion(t *testing.T) {
	k := keys(t)[2]
	rc := newReceiver(t, nil)
	var ts tokenServer
	ts.install(t, rc, func(r *http.Request) error {
		form := r.PostForm
		switch {
		case form.Get("grant_type") != "client_credentials",
			form.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
			form.Get("scope") != "report.write":
			return fmt.Errorf("form %v", form)
		case r.Header.Get("Authorization") != "":
			return fmt.Errorf("a client assertion needs no Authorization header")
		}
		return verifyJWT(form.Get("client_assertion"), k.alg, k.public, rc.srv.URL+"/token")
	})
	f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "auth": {"type": "jwt", "tokenURL": "URL/token", "scope": "report.write",
		"issuer": "ferry-iss", "subject": "ferry-sub", "privateKey": "secret:pk", "keyId": "key-1"}}`, mapSecrets{"secret:pk": k.pem})
	for range 2 {
		if _, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("data"), 10)); err != nil {
			t.Fatal(err)
		}
	}
	if ts.issued != 1 {
		t.Errorf("%d tokens fetched for two transfers, want 1", ts.issued)
	}
}

// clientCert returns a self-signed client certificate and key, PEM.
func clientCert(t *testing.T) (certPEM, keyPEM string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ferry"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err = x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})), cert
}

func TestClientCertificate(t *testing.T) {
	certPEM, keyPEM, cert := clientCert(t)
	rc := newReceiver(t, func(s *httptest.Server) {
		pool := x509.NewCertPool()
		pool.AddCert(cert)
		s.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
		s.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	})
	rc.check = func(w http.ResponseWriter, r *http.Request) bool {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || r.TLS.PeerCertificates[0].Subject.CommonName != "ferry" {
			return refuse(w, 403, "no client certificate")
		}
		return true
	}
	secrets := mapSecrets{"secret:cert": certPEM, "secret:key": keyPEM}
	f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "clientCert": "secret:cert", "clientKey": "secret:key"}`, secrets)
	if _, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("data"), 10)); err != nil {
		t.Fatal(err)
	}
	t.Run("without it the handshake fails", func(t *testing.T) {
		f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca"}`, nil)
		if _, err := deliver(context.Background(), f.tr, f.transfer(t, []byte("data"), 10)); err == nil {
			t.Fatal("delivered without a client certificate")
		}
	})
}

// envelope is a SOAP envelope of either version, as the receiver parses it.
type envelope struct {
	XMLName xml.Name
	Body    struct {
		Op struct {
			XMLName xml.Name
			Payload string `xml:"payload"`
		} `xml:",any"`
	} `xml:"Body"`
}

func TestSOAP(t *testing.T) {
	data := payload(5, 100_000+2) // not a multiple of 3
	for _, tc := range []struct {
		version, envNS, contentType, soapAction string
	}{
		{"1.1", "http://schemas.xmlsoap.org/soap/envelope/", "text/xml; charset=utf-8", `"urn:submit"`},
		{"1.2", "http://www.w3.org/2003/05/soap-envelope", `application/soap+xml; charset=utf-8; action="urn:submit"`, ""},
	} {
		t.Run(tc.version, func(t *testing.T) {
			rc := newReceiver(t, nil)
			var got []byte
			rc.check = func(w http.ResponseWriter, r *http.Request) bool {
				if ct := r.Header.Get("Content-Type"); ct != tc.contentType {
					return refuse(w, 415, "Content-Type "+ct)
				}
				if a := r.Header.Get("SOAPAction"); a != tc.soapAction {
					return refuse(w, 400, "SOAPAction "+a)
				}
				raw, err := io.ReadAll(r.Body)
				if err != nil || int64(len(raw)) != r.ContentLength {
					return refuse(w, 400, fmt.Sprintf("read %d of %d bytes: %v", len(raw), r.ContentLength, err))
				}
				var env envelope
				if err := xml.Unmarshal(raw, &env); err != nil {
					return refuse(w, 400, err.Error())
				}
				if env.XMLName != (xml.Name{Space: tc.envNS, Local: "Envelope"}) || env.Body.Op.XMLName != (xml.Name{Space: "urn:example:reports", Local: "SubmitReport"}) {
					return refuse(w, 400, fmt.Sprintf("envelope %v, operation %v", env.XMLName, env.Body.Op.XMLName))
				}
				if got, err = base64.StdEncoding.DecodeString(env.Body.Op.Payload); err != nil {
					return refuse(w, 400, err.Error())
				}
				w.WriteHeader(200)
				return false
			}
			f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca",
				"soap": {"version": "`+tc.version+`", "action": "urn:submit", "namespace": "urn:example:reports", "operation": "SubmitReport"}}`, nil)
			if _, err := deliver(context.Background(), f.tr, f.transfer(t, data, 30_000)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("the envelope's payload (%d bytes) differs from the source (%d bytes)", len(got), len(data))
			}
		})
	}
}
