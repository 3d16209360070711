package app

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/mesh"
)

// MESH is the MESH side of the application, built once per cold start
// from the routing file's mesh section (mesh.ParseConfig).
type MESH struct {
	Config     mesh.Config
	Clients    map[string]*mesh.Client
	Outbound   *mesh.Outbound
	Inbound    *mesh.Inbound
	Addressing *mesh.Addressing
}

// newMESH builds the MESH side: the intake's addressing always, and, when
// clients is true, a client per mailbox with its credentials resolved (only
// the functions that talk to MESH read the secrets). handshakes, when not
// nil, is the record the clients share so that each mailbox handshakes once
// a day across processes; log receives the clients' warnings.
func newMESH(ctx context.Context, c mesh.Config, secrets *Secrets, clients bool, handshakes mesh.HandshakeRecord, log *slog.Logger) (*MESH, error) {
	m := &MESH{Config: c, Clients: map[string]*mesh.Client{}, Addressing: c.Addressing()}
	m.Inbound = &mesh.Inbound{Clients: m.Clients, MaxConcurrency: c.Inbound.MaxConcurrency}
	if !clients {
		return m, nil
	}
	get := func(ref string) ([]byte, error) {
		if ref == "" {
			return nil, nil
		}
		return secrets.Resolve(ctx, ref)
	}
	url := c.URL
	if domain.IsSecretRef(url) {
		v, err := secrets.ResolveString(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("mesh url: %w", err)
		}
		url = strings.TrimSpace(v)
	}
	shared, err := get(c.SharedKey)
	if err != nil {
		return nil, fmt.Errorf("mesh shared key: %w", err)
	}
	ca, err := get(c.CACert)
	if err != nil {
		return nil, fmt.Errorf("mesh CA: %w", err)
	}
	for _, mb := range c.Mailboxes {
		pw, err := get(mb.Password)
		if err != nil {
			return nil, fmt.Errorf("mesh mailbox %s password: %w", mb.ID, err)
		}
		certRef, keyRef := firstRef(mb.ClientCert, c.ClientCert), firstRef(mb.ClientKey, c.ClientKey)
		cert, err := get(certRef)
		if err != nil {
			return nil, fmt.Errorf("mesh mailbox %s client certificate: %w", mb.ID, err)
		}
		key, err := get(keyRef)
		if err != nil {
			return nil, fmt.Errorf("mesh mailbox %s client key: %w", mb.ID, err)
		}
		cl, err := mesh.New(mesh.ClientConfig{
			URL: url, Mailbox: mb.ID, Password: string(pw), SharedKey: string(shared),
			CACertPEM: ca, ClientCertPEM: cert, ClientKeyPEM: key, InsecureSkipVerify: c.InsecureSkipVerify,
			Handshakes: handshakes, Log: log,
		})
		if err != nil {
			return nil, fmt.Errorf("mesh mailbox %s: %w", mb.ID, err)
		}
		m.Clients[strings.ToUpper(mb.ID)] = cl
	}
	return m, nil
}

func firstRef(refs ...string) string {
	for _, r := range refs {
		if r != "" {
			return r
		}
	}
	return ""
}
