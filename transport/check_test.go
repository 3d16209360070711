package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

func certPEM(t *testing.T, cn string, notAfter time.Time) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-48 * time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestCertificatesReadsEveryCertificateAndSkipsKeys(t *testing.T) {
	now := time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)
	data := append(certPEM(t, "one", now.Add(24*time.Hour)), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})...)
	data = append(data, certPEM(t, "two", now.Add(-time.Hour))...)
	creds, err := Certificates("caBundle secret:x", data)
	if err != nil {
		t.Fatal(err)
	}
	if len(creds) != 2 || creds[0].Subject != "CN=one" || creds[1].Subject != "CN=two" || !creds[0].Expires.Equal(now.Add(24*time.Hour)) {
		t.Fatalf("got %+v", creds)
	}
	if err := Expired(creds[:1], now); err != nil {
		t.Errorf("a certificate valid for a day counts as expired: %v", err)
	}
	err = Expired(creds, now)
	var de *domain.Error
	if !errors.As(err, &de) || de.Kind != domain.KindUnauthorized || de.Code != "CERTIFICATE_EXPIRED" {
		t.Fatalf("expired certificate: %v, want an unauthorized CERTIFICATE_EXPIRED", err)
	}
}

func TestCertificatesRefusesDataWithoutOne(t *testing.T) {
	for name, data := range map[string][]byte{
		"empty":    nil,
		"not PEM":  []byte("hello"),
		"only key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}}),
		"garbage":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
	} {
		if _, err := Certificates("ca", data); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("%s: %v, want an invalid-kind error", name, err)
		}
	}
}
