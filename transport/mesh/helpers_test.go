package mesh

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

const (
	testPassword  = "sekrit-password"
	testSharedKey = "sekrit-shared-key"
)

var testNow = time.Date(2024, 3, 7, 9, 5, 42, 0, time.UTC)

// testClient returns a client for url as mailbox X26ABC1 with a fixed clock.
func testClient(t *testing.T, url string, edit ...func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{
		URL: url, Mailbox: "x26abc1", Password: testPassword, SharedKey: testSharedKey,
		Timeout: 5 * time.Second, Now: func() time.Time { return testNow }, ClientVersion: "ferry==test",
	}
	for _, e := range edit {
		e(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

// wantError checks err is a *domain.Error of kind (and code, when not "")
// whose message holds every fragment and no secret.
func wantError(t *testing.T, err error, kind domain.Kind, code string, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", kind)
	}
	var de *domain.Error
	if !errors.As(err, &de) {
		t.Fatalf("error %v (%T) is not a *domain.Error", err, err)
	}
	if de.Kind != kind {
		t.Errorf("kind = %s, want %s (error: %v)", de.Kind, kind, err)
	}
	if code != "" && de.Code != code {
		t.Errorf("code = %q, want %q (error: %v)", de.Code, code, err)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not contain %q", err, f)
		}
	}
	noSecrets(t, err.Error())
}

func noSecrets(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{testPassword, testSharedKey, "PRIVATE KEY"} {
		if strings.Contains(s, secret) {
			t.Errorf("%q reveals a secret", s)
		}
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
