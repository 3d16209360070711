package https

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

func TestCheck(t *testing.T) {
	ctx := context.Background()
	d := domain.Destination{Type: "https", Endpoint: "ep"}
	t.Run("without a probe: a TLS handshake, and the CA bundle's certificate read", func(t *testing.T) {
		rc := newReceiver(t, nil)
		f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca"}`, nil)
		creds, err := f.tr.Check(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		if len(creds) != 1 || !strings.HasPrefix(creds[0].Name, "caBundle secret:ca") || creds[0].Expires.IsZero() {
			t.Errorf("credentials %+v, want the CA bundle's certificate", creds)
		}
		if n := len(rc.requests()); n != 0 {
			t.Errorf("the check made %d requests to the upload URL", n)
		}
	})
	t.Run("a server whose certificate the bundle does not hold fails", func(t *testing.T) {
		rc := newReceiver(t, nil)
		f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca"}`, nil)
		f.secrets["secret:ca"] = selfSigned(t)
		if _, err := f.tr.Check(ctx, d); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("unknown server certificate: %v, want a certificate error", err)
		}
	})
	t.Run("a probe request with the endpoint's credentials", func(t *testing.T) {
		rc := newReceiver(t, nil)
		var probes atomic.Int32
		status := http.StatusNoContent
		rc.mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodHead || r.Header.Get("X-API-Key") != "k3y" {
				http.Error(w, "who are you", http.StatusUnauthorized)
				return
			}
			probes.Add(1)
			w.WriteHeader(status)
		})
		f := newFixture(t, rc, `{"url": "URL/upload", "caBundle": "secret:ca", "probe": {"url": "URL/health"},
			"auth": {"type": "apiKey", "header": "X-API-Key", "key": "secret:key"}}`, mapSecrets{"secret:key": "k3y"})
		if _, err := f.tr.Check(ctx, d); err != nil || probes.Load() != 1 {
			t.Fatalf("probe: %v after %d probes, want one that passed", err, probes.Load())
		}
		status = http.StatusServiceUnavailable
		if _, err := f.tr.Check(ctx, d); domain.KindOf(err) != domain.KindUnavailable {
			t.Errorf("a 503 probe: %v, want unavailable", err)
		}
		f.secrets["secret:key"] = "wrong"
		f.tr.conns = map[string]*conn{}
		if _, err := f.tr.Check(ctx, d); domain.KindOf(err) != domain.KindUnauthorized {
			t.Errorf("a refused key: %v, want unauthorized", err)
		}
		if n := len(rc.requests()); n != 0 {
			t.Errorf("the check made %d requests to the upload URL", n)
		}
	})
}

// selfSigned returns a CA certificate that signed nothing the test servers
// present.
func selfSigned(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "stranger"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
