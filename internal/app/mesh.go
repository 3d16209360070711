package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/functions/meshpoll"
	"github.com/ferryhq/ferry/transport"
	"github.com/ferryhq/ferry/transport/mesh"
)

// MeshConfig is the "mesh" section of the routing file: one MESH
// environment, the mailboxes ferry holds credentials for, and how inbound
// messages are collected. Every credential (and the URL, which the seed
// client also keeps in SSM) is a reference: secret:NAME or ssm:NAME; the
// URL may also be given literally.
type MeshConfig struct {
	URL                string          `json:"url"`
	SharedKey          string          `json:"sharedKey"`
	CACert             string          `json:"caCert,omitempty"`
	ClientCert         string          `json:"clientCert,omitempty"`
	ClientKey          string          `json:"clientKey,omitempty"`
	InsecureSkipVerify bool            `json:"insecureSkipVerify,omitempty"`
	Mailboxes          []MeshMailbox   `json:"mailboxes"`
	CompressThreshold  domain.ByteSize `json:"compressThreshold,omitempty"`
	NeverCompress      bool            `json:"neverCompress,omitempty"`
	TrackInterval      domain.Duration `json:"trackInterval,omitempty"`
	Inbound            MeshInbound     `json:"inbound"`
}

// MeshMailbox is one mailbox ferry sends from or receives into.
type MeshMailbox struct {
	ID       string `json:"id"`
	Password string `json:"password"`
	// ClientCert and ClientKey override the environment's for this mailbox.
	ClientCert       string        `json:"clientCert,omitempty"`
	ClientKey        string        `json:"clientKey,omitempty"`
	OutboundMappings []MeshMapping `json:"outboundMappings,omitempty"`
}

// MeshMapping supplies mex-to and mex-workflowid for uploads in a
// mailbox's folder that lack them.
type MeshMapping struct {
	To       string `json:"to"`
	Workflow string `json:"workflow"`
}

// MeshInbound says which inboxes are polled and where messages land.
type MeshInbound struct {
	Mailboxes         []string        `json:"mailboxes"`
	Bucket            string          `json:"bucket"`
	Prefix            string          `json:"prefix,omitempty"`
	PollInterval      domain.Duration `json:"pollInterval,omitempty"`
	PageLimit         int             `json:"pageLimit,omitempty"`
	MaxConcurrency    int             `json:"maxConcurrency,omitempty"`
	UseSenderFilename bool            `json:"useSenderFilename,omitempty"`
}

// DefaultMeshPollInterval is how often an inbox is polled when the mesh
// section does not say: the MESH API specification asks clients to poll no
// more than every five minutes, except to list again at once when a page
// came back full (meshpoll does).
const DefaultMeshPollInterval = 5 * time.Minute

// ParseMeshConfig decodes and checks a mesh section, reporting every
// problem at once.
func ParseMeshConfig(raw json.RawMessage) (MeshConfig, error) {
	var c MeshConfig
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("mesh: %w", err)
	}
	if c.Inbound.Prefix == "" {
		c.Inbound.Prefix = meshpoll.DefaultPrefix
	}
	if c.Inbound.PollInterval == 0 {
		c.Inbound.PollInterval = domain.Duration(DefaultMeshPollInterval)
	}
	if c.TrackInterval == 0 {
		c.TrackInterval = domain.Duration(transport.DefaultTrackInterval)
	}
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("mesh: url is missing"))
	}
	for name, ref := range map[string]string{"sharedKey": c.SharedKey, "caCert": c.CACert, "clientCert": c.ClientCert, "clientKey": c.ClientKey} {
		if ref != "" && !IsRef(ref) {
			errs = append(errs, fmt.Errorf("mesh: %s must be a secret:NAME or ssm:NAME reference, not a value", name))
		}
	}
	if c.SharedKey == "" {
		errs = append(errs, errors.New("mesh: sharedKey is missing"))
	}
	known := map[string]bool{}
	for i, m := range c.Mailboxes {
		switch {
		case m.ID == "":
			errs = append(errs, fmt.Errorf("mesh: mailbox %d has no id", i+1))
		case known[strings.ToUpper(m.ID)]:
			errs = append(errs, fmt.Errorf("mesh: mailbox %s is listed twice", m.ID))
		}
		known[strings.ToUpper(m.ID)] = true
		if !IsRef(m.Password) {
			errs = append(errs, fmt.Errorf("mesh: mailbox %s: password must be a secret:NAME or ssm:NAME reference", m.ID))
		}
		for _, mp := range m.OutboundMappings {
			if mp.To == "" || mp.Workflow == "" {
				errs = append(errs, fmt.Errorf("mesh: mailbox %s: an outbound mapping needs to and workflow", m.ID))
			}
		}
	}
	for _, id := range c.Inbound.Mailboxes {
		if !known[strings.ToUpper(id)] {
			errs = append(errs, fmt.Errorf("mesh: inbound mailbox %s is not among the mailboxes", id))
		}
	}
	if len(c.Inbound.Mailboxes) > 0 && c.Inbound.Bucket == "" {
		errs = append(errs, errors.New("mesh: inbound needs a bucket"))
	}
	return c, errors.Join(errs...)
}

// Mesh is the MESH side of the application, built once per cold start.
type Mesh struct {
	Config   MeshConfig
	Clients  map[string]*mesh.Client
	Outbound *mesh.Outbound
	Inbound  *mesh.Inbound
	Poll     *meshpoll.Handler
	Intake   *intake.MeshOutbound
}

// newMesh builds the MESH side: the intake's addressing always, and, when
// clients is true, a client per mailbox with its credentials resolved (only
// the functions that talk to MESH read the secrets). handshakes, when not
// nil, is the record the clients share so that each mailbox handshakes once
// a day across processes; log receives the clients' warnings.
func newMesh(ctx context.Context, c MeshConfig, secrets *Secrets, clients bool, handshakes mesh.HandshakeRecord, log *slog.Logger) (*Mesh, error) {
	m := &Mesh{Config: c, Clients: map[string]*mesh.Client{}, Intake: &intake.MeshOutbound{
		Mailboxes: map[string][]intake.MeshMapping{},
		Compress:  mesh.CompressOptions{Threshold: int64(c.CompressThreshold), Never: c.NeverCompress},
	}}
	for _, mb := range c.Mailboxes {
		var maps []intake.MeshMapping
		for _, mp := range mb.OutboundMappings {
			maps = append(maps, intake.MeshMapping{To: strings.ToUpper(mp.To), Workflow: mp.Workflow})
		}
		m.Intake.Mailboxes[strings.ToUpper(mb.ID)] = maps
	}
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
	if IsRef(url) {
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
		cl, err := mesh.New(mesh.Config{
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
