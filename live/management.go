package live

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/ferryhq/ferry/domain"
)

// ErrGone is what the management API answers for a connection that is no
// longer open (410 GoneException): a client that went without $disconnect.
var ErrGone = errors.New("the connection is gone")

// Management is API Gateway's @connections management API of one
// WebSocket API stage: it pushes a frame to a connection. Requests are
// signed with SigV4 for execute-api, as the SDK's apigatewaymanagementapi
// client signs them (that module is not served to this build, so the one
// call ferry makes is written here, with the SDK's signer and credentials).
type Management struct {
	// Endpoint is the stage's HTTPS URL:
	// https://{api-id}.execute-api.{region}.amazonaws.com/{stage}.
	Endpoint    string
	Region      string
	Credentials aws.CredentialsProvider
	// HTTP sends the requests (the SDK config's client, with its TLS
	// settings); http.DefaultClient when nil.
	HTTP aws.HTTPClient
	// Timeout bounds one push, so that a slow connection does not hold up
	// the others; 3 seconds when zero.
	Timeout time.Duration
	signer  *v4.Signer
}

// Post sends data to connection id as one frame.
func (m *Management) Post(ctx context.Context, id string, data []byte) error {
	if m.signer == nil {
		m.signer = v4.NewSigner()
	}
	timeout := m.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(m.Endpoint, "/")+"/@connections/"+url.PathEscape(id), bytes.NewReader(data))
	if err != nil {
		return domain.Errorf(domain.KindInvalid, "push: %v", err)
	}
	sum := sha256.Sum256(data)
	creds, err := m.Credentials.Retrieve(ctx)
	if err != nil {
		return domain.Errorf(domain.KindUnauthorized, "push: credentials: %v", err)
	}
	if err := m.signer.SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "execute-api", m.Region, time.Now()); err != nil {
		return domain.Errorf(domain.KindInvalid, "push: sign: %v", err)
	}
	var client aws.HTTPClient = http.DefaultClient
	if m.HTTP != nil {
		client = m.HTTP
	}
	resp, err := client.Do(req)
	if err != nil {
		return domain.Errorf(domain.KindUnavailable, "push to %s: %v", id, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode < 300:
		return nil
	case resp.StatusCode == http.StatusGone:
		return ErrGone
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return domain.Errorf(domain.KindUnavailable, "push to %s: %s %s", id, resp.Status, body)
	case resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		return domain.Errorf(domain.KindUnauthorized, "push to %s: %s %s", id, resp.Status, body)
	default:
		return domain.Errorf(domain.KindInvalid, "push to %s: %s %s", id, resp.Status, body)
	}
}

// String names the endpoint, for logs.
func (m *Management) String() string { return fmt.Sprintf("@connections at %s", m.Endpoint) }
