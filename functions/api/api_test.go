package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/ferryhq/ferry/api"
	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/authorizer"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/store"
)

var t0 = time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

const (
	idAB = "01JNZ0AAAAAAAAAAAAAAAAAAAA" // org-a to org-b, failed for good
	idCD = "01JNZ0BBBBBBBBBBBBBBBBBBBB" // org-c to org-d, delivered, awaiting its acknowledgement
)

var (
	orgA     = Identity{Party: "org-a", Role: store.RolePartner, KeyID: "aaaaaaaaaaaaaaaa"}
	orgB     = Identity{Party: "org-b", Role: store.RolePartner, KeyID: "bbbbbbbbbbbbbbbb"}
	operator = Identity{Party: "ops", Role: store.RoleOperator, KeyID: "0000000000000000"}
)

// memStore is memstore with a history query that is down: queries are
// tested against the DynamoDB store, in the integration tests; here they
// show how the API answers when the store is unavailable.
type memStore struct{ *memstore.Store }

func (memStore) History(context.Context, store.Query) (store.Page, error) {
	return store.Page{}, domain.Errorf(domain.KindUnavailable, "history: throttled")
}

func (memStore) ClaimIdempotencyKey(_ context.Context, _, _, id string, _ time.Time) (string, error) {
	return id, nil
}

type fixture struct {
	h      *Handler
	store  *memstore.Store
	router routers.Router
	logs   *bytes.Buffer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		t.Fatalf("api/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("api/openapi.yaml is not valid: %v", err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: memstore.New(), router: router, logs: &bytes.Buffer{}}
	routes := domain.Routes{Routes: []domain.Route{{
		Name: "to-org-b", Match: domain.Match{Prefix: "outbound/", Recipient: "org-b"}, Destination: domain.Destination{Type: "null"},
	}}}
	f.h = &Handler{Store: memStore{f.store}, Bucket: "ferry-local", Intake: &intake.Handler{Routes: routes}, Now: func() time.Time { return t0.Add(time.Hour) }, Log: slog.New(slog.NewJSONHandler(f.logs, nil))}
	req := func(sender, recipient string) domain.Requested {
		return domain.Requested{
			Source: domain.Source{Kind: "s3", Bucket: "ferry-local", Key: "outbound/a.csv", VersionID: "v1"},
			Route:  "to-partner", Destination: domain.Destination{Type: "null"},
			Sender: sender, Recipient: recipient, Filename: "a.csv", Size: 25, ChunkSize: 10, Chunks: 3,
		}
	}
	failed := domain.Failed{Kind: domain.KindUnauthorized, Code: "403", Message: "denied", Attempt: 1}
	f.store.Seed(idAB, t0, req("org-a", "org-b"), domain.Started{}, failed)
	cd := req("org-c", "org-d")
	cd.ExpectAck = true
	f.store.Seed(idCD, t0, cd, domain.Started{},
		domain.ChunkSent{Index: 1, Bytes: 10}, domain.ChunkSent{Index: 2, Bytes: 10}, domain.ChunkSent{Index: 3, Bytes: 5},
		domain.Delivered{Location: "null://a.csv"})
	return f
}

// call sends a request as who (or with a refused key, when who is nil and
// denied is set), checks the response against the spec and returns it.
func (f *fixture) call(t *testing.T, who *Identity, method, target, body string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	lambda := map[string]any{authorizer.ContextDenied: "the API key is not valid"}
	if who != nil {
		lambda = map[string]any{authorizer.ContextParty: who.Party, authorizer.ContextRole: who.Role, authorizer.ContextKeyID: who.KeyID}
	}
	q := map[string]string{}
	for k, v := range u.Query() {
		q[k] = v[0]
	}
	req := events.APIGatewayV2HTTPRequest{
		RawPath: u.Path, RawQueryString: u.RawQuery, QueryStringParameters: q, Body: body,
		Headers: map[string]string{"content-type": "application/json", "authorization": "Bearer fry_test"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			HTTP:       events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: method, Path: u.Path},
			Authorizer: &events.APIGatewayV2HTTPRequestContextAuthorizerDescription{Lambda: lambda},
		},
	}
	resp, err := f.h.Handle(context.Background(), req)
	if err != nil {
		t.Fatalf("%s %s: Handle returned an error: %v", method, target, err)
	}
	f.conforms(t, method, target, body, resp)
	return resp
}

// conforms checks a response against api/openapi.yaml: the route exists,
// and the status, headers and body are what it describes.
func (f *fixture) conforms(t *testing.T, method, target, body string, resp events.APIGatewayV2HTTPResponse) {
	t.Helper()
	hreq := httptest.NewRequest(method, target, strings.NewReader(body))
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Authorization", "Bearer fry_test")
	route, params, err := f.router.FindRoute(hreq)
	if err != nil {
		if resp.StatusCode == http.StatusNotFound {
			return // no such route: the API says so too
		}
		t.Fatalf("%s %s: not in the spec: %v", method, target, err)
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: hreq, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status: resp.StatusCode,
		Header: http.Header{},
		Body:   io.NopCloser(strings.NewReader(resp.Body)),
	}
	for k, v := range resp.Headers {
		in.Header.Set(k, v)
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Errorf("%s %s → %d does not conform to api/openapi.yaml: %v\n%s", method, target, resp.StatusCode, err, resp.Body)
	}
}

func errorCode(t *testing.T, resp events.APIGatewayV2HTTPResponse) string {
	t.Helper()
	var b struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal([]byte(resp.Body), &b); err != nil || b.Error.Code == "" {
		t.Fatalf("not an error body: %s", resp.Body)
	}
	return b.Error.Code
}

func TestGetTransfer(t *testing.T) {
	f := newFixture(t)
	for _, who := range []Identity{orgA, orgB, operator} {
		resp := f.call(t, &who, "GET", "/transfers/"+idAB, "")
		var got transfer
		if err := json.Unmarshal([]byte(resp.Body), &got); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", who.Party, resp.StatusCode, resp.Body)
		}
		if got.ID != idAB || got.Status != domain.StatusFailed || got.Sender != "org-a" || got.LastFailure == nil || got.LastFailure.Code != "403" {
			t.Errorf("%s sees %+v, want the failed transfer from org-a", who.Party, got)
		}
	}
	// Another party's transfer, a malformed id and an unknown one.
	for _, c := range []struct {
		who    Identity
		target string
		status int
		code   string
	}{
		{orgA, "/transfers/" + idCD, 404, "not_found"},
		{operator, "/transfers/01JNZ0ZZZZZZZZZZZZZZZZZZZZ", 404, "not_found"},
		{orgA, "/transfers/not-an-id", 400, "bad_request"},
		{orgA, "/nowhere", 404, "not_found"},
	} {
		resp := f.call(t, &c.who, "GET", c.target, "")
		if resp.StatusCode != c.status || errorCode(t, resp) != c.code {
			t.Errorf("%s GET %s = %d %s, want %d %s", c.who.Party, c.target, resp.StatusCode, resp.Body, c.status, c.code)
		}
	}
	// The 404 for another party's transfer is the 404 for none at all.
	hidden := f.call(t, &orgA, "GET", "/transfers/"+idCD, "")
	none := f.call(t, &orgA, "GET", "/transfers/01JNZ0ZZZZZZZZZZZZZZZZZZZZ", "")
	if strings.Replace(hidden.Body, idCD, "ID", 1) != strings.Replace(none.Body, "01JNZ0ZZZZZZZZZZZZZZZZZZZZ", "ID", 1) {
		t.Errorf("another party's transfer answers %s, an unknown one %s: they must not differ", hidden.Body, none.Body)
	}
}

func TestRefusedCredential(t *testing.T) {
	f := newFixture(t)
	resp := f.call(t, nil, "GET", "/transfers/"+idAB, "")
	if resp.StatusCode != 401 || errorCode(t, resp) != "unauthorized" {
		t.Errorf("refused key: %d %s, want 401 unauthorized", resp.StatusCode, resp.Body)
	}
	if !strings.Contains(f.logs.String(), "request refused") || strings.Contains(f.logs.String(), "fry_test") {
		t.Errorf("the refusal is not logged, or the key is:\n%s", f.logs)
	}
}

func TestEvents(t *testing.T) {
	f := newFixture(t)
	resp := f.call(t, &operator, "GET", "/transfers/"+idCD+"/events?limit=4", "")
	var page eventPage
	if err := json.Unmarshal([]byte(resp.Body), &page); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, resp.Body)
	}
	if len(page.Items) != 4 || page.Next == nil || *page.Next != 4 || page.Items[0].Type != "Requested" || page.Items[3].Chunk != 2 {
		t.Fatalf("first page = %+v, want 4 events from Requested and next 4", page)
	}
	for _, d := range page.Items {
		b, _ := json.Marshal(d)
		if err := schema.ValidateTransferEvent(b); err != nil {
			t.Errorf("event %s is not a valid detail: %v", d.EventID, err)
		}
	}
	resp = f.call(t, &operator, "GET", "/transfers/"+idCD+"/events?after=4", "")
	page = eventPage{}
	if err := json.Unmarshal([]byte(resp.Body), &page); err != nil || len(page.Items) != 2 || page.Next != nil ||
		page.Items[1].Type != "Delivered" || page.Items[1].Status != "DELIVERED" {
		t.Errorf("second page = %+v, want ChunkSent 3 and Delivered, no next", page)
	}
	for _, target := range []string{"/transfers/" + idCD + "/events?limit=0", "/transfers/" + idCD + "/events?after=x"} {
		if resp := f.call(t, &operator, "GET", target, ""); resp.StatusCode != 400 || !strings.Contains(resp.Body, strings.Split(strings.Split(target, "?")[1], "=")[0]) {
			t.Errorf("GET %s = %d %s, want 400 naming the parameter", target, resp.StatusCode, resp.Body)
		}
	}
	if resp := f.call(t, &orgA, "GET", "/transfers/"+idCD+"/events", ""); resp.StatusCode != 404 {
		t.Errorf("org-a reads org-c's events: %d", resp.StatusCode)
	}
}

func TestCommands(t *testing.T) {
	f := newFixture(t)
	// Replay: the sender may replay its own; a party not in it cannot see it.
	if resp := f.call(t, &Identity{Party: "org-x", Role: store.RolePartner}, "POST", "/transfers/"+idAB+"/replay", `{"reason":"x"}`); resp.StatusCode != 404 {
		t.Errorf("org-x replays org-a's transfer: %d %s", resp.StatusCode, resp.Body)
	}
	if resp := f.call(t, &orgA, "POST", "/transfers/"+idAB+"/replay", `{}`); resp.StatusCode != 400 || !strings.Contains(resp.Body, "reason") {
		t.Errorf("replay without a reason: %d %s", resp.StatusCode, resp.Body)
	}
	resp := f.call(t, &orgA, "POST", "/transfers/"+idAB+"/replay", `{"reason":"key rotated"}`)
	if resp.StatusCode != 202 || !strings.Contains(resp.Body, `"status":"IN_PROGRESS"`) {
		t.Fatalf("replay: %d %s", resp.StatusCode, resp.Body)
	}
	h := f.store.History(idAB)
	if r, ok := h[len(h)-1].Payload.(domain.Replayed); !ok || !strings.Contains(r.Actor, "org-a") || !strings.Contains(r.Actor, orgA.KeyID) || r.Reason != "key rotated" {
		t.Errorf("last event %+v, want Replayed by org-a's key, with the reason", h[len(h)-1])
	}
	// A running transfer cannot be replayed.
	if resp := f.call(t, &orgA, "POST", "/transfers/"+idAB+"/replay", `{"reason":"again"}`); resp.StatusCode != 409 || errorCode(t, resp) != "conflict" {
		t.Errorf("replay of a running transfer: %d %s, want 409", resp.StatusCode, resp.Body)
	}

	// Ack: only the recipient.
	if resp := f.call(t, &operator, "POST", "/transfers/"+idCD+"/ack", ``); resp.StatusCode != 403 {
		t.Errorf("an operator acknowledges for org-d: %d %s, want 403", resp.StatusCode, resp.Body)
	}
	orgD := Identity{Party: "org-d", Role: store.RolePartner, KeyID: "dddddddddddddddd"}
	resp = f.call(t, &orgD, "POST", "/transfers/"+idCD+"/ack", `{"ref":"rcpt-7"}`)
	if resp.StatusCode != 202 || !strings.Contains(resp.Body, `"status":"ACKNOWLEDGED"`) {
		t.Fatalf("ack: %d %s", resp.StatusCode, resp.Body)
	}
	h = f.store.History(idCD)
	if a, ok := h[len(h)-1].Payload.(domain.Acknowledged); !ok || a.By != "org-d" || a.Ref != "rcpt-7" {
		t.Errorf("last event %+v, want Acknowledged by org-d, ref rcpt-7", h[len(h)-1])
	}
	if resp := f.call(t, &orgD, "POST", "/transfers/"+idCD+"/ack", `{"nonsense":1}`); resp.StatusCode != 400 {
		t.Errorf("ack with an unknown field: %d, want 400", resp.StatusCode)
	}

	// Cancel of a finished transfer is a conflict.
	if resp := f.call(t, &operator, "POST", "/transfers/"+idCD+"/cancel", `{"reason":"late"}`); resp.StatusCode != 409 {
		t.Errorf("cancel of an acknowledged transfer: %d %s, want 409", resp.StatusCode, resp.Body)
	}
}

func TestErrorTable(t *testing.T) {
	for _, c := range []struct {
		err    error
		status int
		code   string
	}{
		{domain.Errorf(domain.KindInvalid, "bad"), 400, "bad_request"},
		{domain.Errorf(domain.KindNotFound, "gone"), 404, "not_found"},
		{domain.Errorf(domain.KindConflict, "moved"), 409, "conflict"},
		{domain.Errorf(domain.KindUnauthorized, "who"), 401, "unauthorized"},
		{domain.Errorf(domain.KindUnavailable, "throttled by dynamodb"), 503, "unavailable"},
		{io.ErrUnexpectedEOF, 500, "internal"},
	} {
		e := errorOf(c.err)
		if e.status != c.status || e.code != c.code {
			t.Errorf("errorOf(%v) = %d %s, want %d %s", c.err, e.status, e.code, c.status, c.code)
		}
		if c.status >= 500 && strings.Contains(e.message, c.err.Error()) {
			t.Errorf("errorOf(%v) shows the cause to the caller: %q", c.err, e.message)
		}
	}
}

func TestListRefusals(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct{ target, names string }{
		{"/transfers", "status, sender, recipient or route"},
		{"/transfers?status=LOST", "status"},
		{"/transfers?sender=org-a&limit=5000", "limit"},
		{"/transfers?sender=org-a&since=yesterday", "since"},
		{"/transfers?sender=org-a&colour=red", "colour"},
	} {
		resp := f.call(t, &orgA, "GET", c.target, "")
		if resp.StatusCode != 400 || !strings.Contains(resp.Body, c.names) {
			t.Errorf("GET %s = %d %s, want 400 naming %s", c.target, resp.StatusCode, resp.Body, c.names)
		}
	}
	// Another party's transfers: none, without asking the store.
	resp := f.call(t, &orgA, "GET", "/transfers?sender=org-c", "")
	if resp.StatusCode != 200 || resp.Body != `{"items":[]}` {
		t.Errorf("org-a asks for org-c's transfers: %d %s, want none", resp.StatusCode, resp.Body)
	}
	resp = f.call(t, &orgA, "GET", "/transfers?status=FAILED", "")
	if resp.StatusCode != 503 || errorCode(t, resp) != "unavailable" || strings.Contains(resp.Body, "throttled") {
		t.Errorf("store down: %d %s, want 503 unavailable without the cause", resp.StatusCode, resp.Body)
	}
}

// TestPostRefusals: what POST /transfers refuses, it refuses before it
// stores anything (the handler here has no S3 to store to).
func TestPostRefusals(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		target, body string
		status       int
		code, names  string
	}{
		{"/transfers?recipient=org-b&colour=red", "x", 400, "bad_request", "colour"},
		{"/transfers?workflow=W", "x", 400, "bad_request", "recipient"},
		{"/transfers?recipient=org-z", "x", 422, "unroutable", "no route"},
		{"/transfers?recipient=org-b", strings.Repeat("x", MaxPost+1), 413, "payload_too_large", "POST /uploads"},
	} {
		resp := f.call(t, &orgA, "POST", c.target, c.body)
		if resp.StatusCode != c.status || errorCode(t, resp) != c.code || !strings.Contains(resp.Body, c.names) {
			t.Errorf("POST %s = %d %s, want %d %s naming %q", c.target, resp.StatusCode, resp.Body, c.status, c.code, c.names)
		}
	}
	if n := len(f.store.IDs()); n != 2 {
		t.Errorf("%d transfers after refused posts, want the fixture's 2", n)
	}
}
