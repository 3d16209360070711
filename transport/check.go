package transport

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// Checker is a transport that can check a destination without sending
// anything: connect, verify the far end, authenticate, and look at where
// files would go. `ferry doctor` and the scheduled health function run it.
// A check makes one attempt, so that a wrong password is tried once per
// run, never enough to lock an account.
type Checker interface {
	// Check checks d, a destination of the checker's type, and returns
	// the credentials with an expiry date it holds for d (certificates),
	// whether or not the check passes. Errors are *domain.Error naming
	// what failed; an expired certificate is one (KindUnauthorized).
	Check(ctx context.Context, d domain.Destination) ([]Credential, error)
}

// Credential is a credential with an expiry date: a certificate ferry
// presents or trusts for a destination.
type Credential struct {
	// Name says which credential it is: the setting and its secret
	// reference ("clientCert secret:ferry/partner/cert").
	Name string `json:"name"`
	// Subject is the certificate's subject.
	Subject string `json:"subject"`
	// Expires is the certificate's NotAfter.
	Expires time.Time `json:"expires"`
}

// Certificates returns the certificates in PEM data as credentials named
// name, skipping blocks that are not certificates. It returns an error
// when data holds no certificate at all.
func Certificates(name string, data []byte) ([]Credential, error) {
	var out []Credential
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, domain.Errorf(domain.KindInvalid, "%s: a certificate does not parse: %v", name, err)
		}
		out = append(out, Credential{Name: name, Subject: c.Subject.String(), Expires: c.NotAfter.UTC()})
	}
	if len(out) == 0 {
		return nil, domain.Errorf(domain.KindInvalid, "%s holds no PEM certificate", name)
	}
	return out, nil
}

// Expired returns an error naming the first of creds that has expired at
// now, or nil.
func Expired(creds []Credential, now time.Time) error {
	for _, c := range creds {
		if !now.Before(c.Expires) {
			return &domain.Error{Kind: domain.KindUnauthorized, Code: "CERTIFICATE_EXPIRED",
				Message: fmt.Sprintf("%s (%s) expired on %s", c.Name, c.Subject, c.Expires.Format(time.RFC3339))}
		}
	}
	return nil
}
