package mesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport"
)

// Config is the "mesh" section of the routing file: one MESH environment,
// the mailboxes ferry holds credentials for, how uploads are compressed,
// and how inbound messages are collected. Every credential (and the URL,
// which the seed client also keeps in SSM) is a reference, secret:NAME or
// ssm:NAME (domain.IsSecretRef); the URL may also be given literally. The
// wiring resolves the references into one ClientConfig per mailbox.
//
// A route sends to MESH with a destination of just {"type": "mesh"}: the
// environment is this section, and from, to and workflow come with each
// upload (Addressing).
type Config struct {
	URL                string          `json:"url"`
	SharedKey          string          `json:"sharedKey"`
	CACert             string          `json:"caCert,omitempty"`
	ClientCert         string          `json:"clientCert,omitempty"`
	ClientKey          string          `json:"clientKey,omitempty"`
	InsecureSkipVerify bool            `json:"insecureSkipVerify,omitempty"`
	Mailboxes          []Mailbox       `json:"mailboxes"`
	CompressThreshold  domain.ByteSize `json:"compressThreshold,omitempty"`
	NeverCompress      bool            `json:"neverCompress,omitempty"`
	TrackInterval      domain.Duration `json:"trackInterval,omitempty"`
	Inbound            InboundConfig   `json:"inbound"`
}

// Mailbox is one mailbox ferry sends from or receives into.
type Mailbox struct {
	ID       string `json:"id"`
	Password string `json:"password"`
	// ClientCert and ClientKey override the environment's for this mailbox.
	ClientCert       string    `json:"clientCert,omitempty"`
	ClientKey        string    `json:"clientKey,omitempty"`
	OutboundMappings []Mapping `json:"outboundMappings,omitempty"`
}

// Mapping supplies mex-to and mex-workflowid for uploads in a mailbox's
// folder that lack them (the first of a mailbox's mappings is used).
type Mapping struct {
	To       string `json:"to"`
	Workflow string `json:"workflow"`
}

// InboundConfig says which inboxes are polled and where their messages
// land (Land).
type InboundConfig struct {
	Mailboxes         []string        `json:"mailboxes"`
	Bucket            string          `json:"bucket"`
	Prefix            string          `json:"prefix,omitempty"`
	PollInterval      domain.Duration `json:"pollInterval,omitempty"`
	PageLimit         int             `json:"pageLimit,omitempty"`
	MaxConcurrency    int             `json:"maxConcurrency,omitempty"`
	UseSenderFilename bool            `json:"useSenderFilename,omitempty"`
}

// DefaultPollInterval is how often an inbox is polled when the mesh section
// does not say: the MESH API specification asks clients to poll no more
// than every five minutes, except to list again at once when a page came
// back full (meshpoll does).
const DefaultPollInterval = 5 * time.Minute

// DefaultInboundPrefix is the key prefix of landed messages when
// InboundConfig.Prefix is empty; the mailbox id and "/" follow it.
const DefaultInboundPrefix = "inbound/"

// ParseConfig decodes a mesh section (refusing unknown fields), gives unset
// fields their defaults (WithDefaults) and checks it (Validate), reporting
// every problem at once. Errors begin "mesh: " and never echo a value that
// may be a secret.
func ParseConfig(raw json.RawMessage) (Config, error) {
	var c Config
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return c, fmt.Errorf("mesh: %w", err)
	}
	c = c.WithDefaults()
	return c, c.Validate()
}

// WithDefaults returns c with every unset optional field given its
// default: the inbound prefix and poll interval (InboundConfig.WithDefaults)
// and the tracking interval (transport.DefaultTrackInterval).
func (c Config) WithDefaults() Config {
	c.Inbound = c.Inbound.WithDefaults()
	if c.TrackInterval == 0 {
		c.TrackInterval = domain.Duration(transport.DefaultTrackInterval)
	}
	return c
}

// WithDefaults returns c with Prefix (DefaultInboundPrefix) and
// PollInterval (DefaultPollInterval) set when they are unset.
func (c InboundConfig) WithDefaults() InboundConfig {
	if c.Prefix == "" {
		c.Prefix = DefaultInboundPrefix
	}
	if c.PollInterval == 0 {
		c.PollInterval = domain.Duration(DefaultPollInterval)
	}
	return c
}

// Validate reports every problem with c at once (errors.Join), or nil:
// a missing URL or shared key, a credential given as a value instead of a
// reference, a mailbox without an id or listed twice, an outbound mapping
// without to or workflow, an inbound mailbox that is not among the
// mailboxes, inbound mailboxes without a bucket. No error echoes a value
// that may be a secret.
func (c Config) Validate() error {
	var errs []error
	if c.URL == "" {
		errs = append(errs, errors.New("mesh: url is missing"))
	}
	for _, ref := range []struct{ name, v string }{
		{"sharedKey", c.SharedKey}, {"caCert", c.CACert}, {"clientCert", c.ClientCert}, {"clientKey", c.ClientKey},
	} {
		if ref.v != "" && !domain.IsSecretRef(ref.v) {
			errs = append(errs, fmt.Errorf("mesh: %s must be a secret:NAME or ssm:NAME reference, not a value", ref.name))
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
		if !domain.IsSecretRef(m.Password) {
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
	return errors.Join(errs...)
}

// Compression is c's compression settings, for ShouldCompress.
func (c Config) Compression() CompressOptions {
	return CompressOptions{Threshold: int64(c.CompressThreshold), Never: c.NeverCompress}
}

// Addressing returns the rule that addresses uploads to c's mailboxes:
// every mailbox by upper-case id, with its outbound mappings (recipients
// upper case), and c's compression settings.
func (c Config) Addressing() *Addressing {
	a := &Addressing{Mailboxes: map[string][]Mapping{}, Compress: c.Compression()}
	for _, mb := range c.Mailboxes {
		var maps []Mapping
		for _, mp := range mb.OutboundMappings {
			maps = append(maps, Mapping{To: strings.ToUpper(mp.To), Workflow: mp.Workflow})
		}
		a.Mailboxes[strings.ToUpper(mb.ID)] = maps
	}
	return a
}

// Land says where a message received in mailbox lands: the bucket under
// Prefix + mailbox + "/", as {msgID}.dat, a REPORT as {msgID}.ctl, or, with
// UseSenderFilename, a DATA message under the sender's mex-FileName when it
// gave one (the transport that writes it sanitises the name). Unset fields
// take their defaults.
func (c InboundConfig) Land(mailbox, msgID string, h MessageHeaders) (domain.Destination, string) {
	c = c.WithDefaults()
	dest := domain.Destination{Type: "s3", Bucket: c.Bucket, Prefix: c.Prefix + mailbox + "/"}
	switch {
	case h.MessageType == MessageTypeReport:
		return dest, msgID + ".ctl"
	case c.UseSenderFilename && h.FileName != "":
		return dest, h.FileName
	}
	return dest, msgID + ".dat"
}
