//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/ferryhq/ferry/internal/testkit/hydra"
)

// oidcAudience is the audience ferry local's authorizer wants of tokens
// (FERRY_OIDC_AUDIENCE).
const oidcAudience = "ferry-api"

// TestAPITokensJWT: partners authenticate with access tokens (JWTs) Ory
// Hydra issues them for the client_credentials grant, the client's id their
// party (ferry local runs with FERRY_OIDC_PARTY_CLAIM=sub): one posts a file
// and each sees only its own transfers; an API key still works through the
// same Authorization header. An expired token, a forged one (Hydra's key
// id, another key), one of a key Hydra never published, one for another
// audience and a header that is not Bearer are each 401 with ferry's error
// body; no header at all is API Gateway's 401.
func TestAPITokensJWT(t *testing.T) {
	ctx := context.Background()
	h := stack.peers.hydra
	client := func(name string, ttl time.Duration, audience ...string) hydra.Client {
		t.Helper()
		c := hydra.Client{ID: uniq(name), Secret: "integration-secret-" + name, Audience: audience, TokenTTL: ttl}
		if err := h.CreateClient(ctx, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	token := func(c hydra.Client, audience string) string {
		t.Helper()
		tok, err := h.Token(ctx, c, audience)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	labA, labB := client("lab-a", 0, oidcAudience), client("lab-b", 0, oidcAudience)
	tokA, tokB := token(labA, oidcAudience), token(labB, oidcAudience)
	// Got now, used last, once it has expired.
	short := client("lab-c", 2*time.Second, oidcAudience)
	expiring := token(short, oidcAudience)

	var posted struct{ ID string }
	t.Run("a partner posts a file with its token", func(t *testing.T) {
		code, body := apiPost(t, "Bearer "+tokA, "/transfers?recipient=partner-a&filename="+labA.ID+".csv&subject=token", []byte("a,b\n1,2\n"))
		if err := json.Unmarshal(body, &posted); code != 202 || err != nil || posted.ID == "" {
			t.Fatalf("POST /transfers = %d %s, want 202 with the transfer", code, body)
		}
		st := stack.waitFor(t, posted.ID, time.Minute, "delivered", delivered)
		if st.Request.Sender != labA.ID {
			t.Errorf("sender %q, want the token's client %s", st.Request.Sender, labA.ID)
		}
	})
	if posted.ID == "" {
		t.FailNow()
	}

	t.Run("each partner sees only its own transfers", func(t *testing.T) {
		var got struct{ ID, Sender string }
		if code := apiCall(t, tokA, "GET", "/transfers/"+posted.ID, "", &got); code != 200 || got.Sender != labA.ID {
			t.Errorf("its sender: GET = %d %+v, want 200 and the transfer", code, got)
		}
		if code := apiCall(t, tokB, "GET", "/transfers/"+posted.ID, "", nil); code != 404 {
			t.Errorf("another partner: GET = %d, want 404", code)
		}
		var page apiPage
		deadline := time.Now().Add(30 * time.Second) // the read model follows the stream
		for len(page.Items) == 0 && time.Now().Before(deadline) {
			page = apiPage{}
			if code := apiCall(t, tokA, "GET", "/transfers?sender="+labA.ID, "", &page); code != 200 {
				t.Fatalf("GET /transfers?sender= = %d", code)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if len(page.Items) != 1 || page.Items[0].ID != posted.ID {
			t.Errorf("its history: %+v, want its one transfer", page.Items)
		}
		page = apiPage{}
		if code := apiCall(t, tokB, "GET", "/transfers?sender="+labA.ID, "", &page); code != 200 || len(page.Items) != 0 {
			t.Errorf("another partner's history of it: %d %+v, want none", code, page.Items)
		}
	})

	t.Run("an API key still works through Authorization: Bearer", func(t *testing.T) {
		key := apiKey(t, labA.ID, "partner")
		if code := apiCall(t, key, "GET", "/transfers/"+posted.ID, "", nil); code != 200 {
			t.Errorf("GET with an API key = %d, want 200", code)
		}
	})

	// Forgeries: tokA's claims, signed with a key Hydra does not hold.
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	parsed, _, err := jwt.NewParser().ParseUnverified(tokA, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	forge := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, parsed.Claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(forger)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	refused := []struct{ name, auth, why string }{
		{"forged: Hydra's kid, another key", "Bearer " + forge(parsed.Header["kid"].(string)), "signature is invalid"},
		{"of a key Hydra never published", "Bearer " + forge("not-a-hydra-key"), `no key "not-a-hydra-key"`},
		{"for another audience", "Bearer " + token(client("lab-d", 0, "another-api"), "another-api"), "invalid audience"},
		{"that is not a JWT", "Bearer not-a-token", "malformed"},
	}
	for _, tc := range refused {
		t.Run("refuses a token "+tc.name, func(t *testing.T) { wantRefused(t, tc.auth, tc.why) })
	}
	t.Run("refuses an Authorization header that is not Bearer", func(t *testing.T) {
		wantRefused(t, "Basic bGFiLWE6c2VjcmV0", "Bearer")
	})
	t.Run("no Authorization header is API Gateway's 401", func(t *testing.T) {
		var got struct{ Message string }
		if code := apiCallAuth(t, "", "GET", "/transfers/"+posted.ID, "", &got); code != 401 || got.Message != "Unauthorized" {
			t.Errorf("GET = %d %+v, want 401 Unauthorized", code, got)
		}
	})
	t.Run("refuses an expired token", func(t *testing.T) {
		exp, err := expiry(expiring)
		if err != nil {
			t.Fatal(err)
		}
		// Hydra's clock and ours are one; the authorizer allows its leeway.
		time.Sleep(time.Until(exp.Add(31 * time.Second)))
		wantRefused(t, "Bearer "+expiring, "expired")
	})
}

// wantRefused checks that a GET with the Authorization header auth is 401
// with ferry's error body, whose message says why.
func wantRefused(t *testing.T, auth, why string) {
	t.Helper()
	var got struct {
		Error struct{ Code, Message string }
	}
	if code := apiCallAuth(t, auth, "GET", "/transfers?status=FAILED", "", &got); code != 401 || got.Error.Code != "unauthorized" || !strings.Contains(got.Error.Message, why) {
		t.Errorf("GET = %d %+v, want 401 unauthorized saying %q", code, got, why)
	}
}

// expiry reads a token's exp, unverified.
func expiry(token string) (time.Time, error) {
	parsed, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		return time.Time{}, err
	}
	exp, err := parsed.Claims.GetExpirationTime()
	if err != nil || exp == nil {
		return time.Time{}, fmt.Errorf("token without exp: %v", err)
	}
	return exp.Time, nil
}

// apiPost posts body to ferry local's HTTP API with the Authorization
// header auth, and returns the status and the answer.
func apiPost(t *testing.T, auth, path string, body []byte) (int, []byte) {
	t.Helper()
	stack.mu.Lock()
	base := stack.local.api
	stack.mu.Unlock()
	req, err := http.NewRequest("POST", base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	req.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}
