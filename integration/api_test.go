//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

var apiKeyRE = regexp.MustCompile(`fry_[a-z2-7]{52}`)

// apiKey makes a key with `ferry keys create` and returns it.
func apiKey(t testing.TB, party, role string) string {
	t.Helper()
	out, code := stack.ferry(t, "keys", "create", "--party", party, "--role", role, "--label", "integration test")
	key := apiKeyRE.FindString(out)
	if code != 0 || key == "" {
		t.Fatalf("ferry keys create --party %s: exit %d\n%s", party, code, out)
	}
	return key
}

// apiCall makes one request to ferry local's HTTP API with key (an API key
// or a token; "" for none) as its Bearer credential and decodes the JSON
// answer into out (when not nil).
func apiCall(t *testing.T, key, method, path, body string, out any) int {
	t.Helper()
	auth := ""
	if key != "" {
		auth = "Bearer " + key
	}
	return apiCallAuth(t, auth, method, path, body, out)
}

// apiCallAuth is apiCall with the Authorization header's value auth ("" for
// none).
func apiCallAuth(t *testing.T, auth, method, path, body string, out any) int {
	t.Helper()
	stack.mu.Lock()
	base := stack.local.api
	stack.mu.Unlock()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s → %d: not JSON: %s", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode
}

type apiPage struct {
	Items []struct {
		ID, Status, Sender string
	}
	Cursor string
}

func (p apiPage) ids() []string {
	var out []string
	for _, it := range p.Items {
		out = append(out, it.ID)
	}
	slices.Sort(out)
	return out
}

// TestAPIPartnersSeeTheirOwn: two partners and an operator, each with a
// key made by `ferry keys create`, query the same transfers through the
// HTTP API (API Gateway and the authorizer emulated): each partner sees
// only its own, in every query; the operator sees all; a revoked or
// unknown key is refused.
func TestAPIPartnersSeeTheirOwn(t *testing.T) {
	a, b := uniq("api-a"), uniq("api-b")
	keyA, keyB := apiKey(t, a, "partner"), apiKey(t, b, "partner")
	ops := apiKey(t, uniq("ops"), "operator")

	// Each partner's transfer fails for good: its route's bucket does not exist.
	ids := map[string]string{}
	for _, party := range []string{a, b} {
		id, _ := stack.upload(t, "outbound/refused/"+party+".bin", 1000, map[string]string{"sender": party})
		stack.waitFor(t, id, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
		ids[party] = id
	}
	waitHistoryOf := func(key, query string, want []string) apiPage {
		t.Helper()
		var page apiPage
		deadline := time.Now().Add(30 * time.Second) // the read model follows the stream
		for {
			page = apiPage{}
			if code := apiCall(t, key, "GET", "/transfers?"+query, "", &page); code != 200 {
				t.Fatalf("GET /transfers?%s = %d", query, code)
			}
			if slices.Equal(page.ids(), want) || time.Now().After(deadline) {
				return page
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	t.Run("by id", func(t *testing.T) {
		var got struct{ ID, Status, Sender string }
		if code := apiCall(t, keyA, "GET", "/transfers/"+ids[a], "", &got); code != 200 || got.ID != ids[a] || got.Status != "FAILED" || got.Sender != a {
			t.Errorf("a reads its own: %d %+v", code, got)
		}
		var e struct{ Error struct{ Code string } }
		if code := apiCall(t, keyA, "GET", "/transfers/"+ids[b], "", &e); code != 404 || e.Error.Code != "not_found" {
			t.Errorf("a reads b's: %d %+v, want 404 not_found", code, e)
		}
		if code := apiCall(t, ops, "GET", "/transfers/"+ids[b], "", &got); code != 200 || got.ID != ids[b] {
			t.Errorf("the operator reads b's: %d %+v", code, got)
		}
		var events struct {
			Items []struct{ Type, Status string }
		}
		if code := apiCall(t, keyB, "GET", "/transfers/"+ids[b]+"/events", "", &events); code != 200 || len(events.Items) < 2 ||
			events.Items[0].Type != "Requested" || events.Items[len(events.Items)-1].Status != "FAILED" {
			t.Errorf("b reads its events: %d %+v", code, events)
		}
	})

	t.Run("queries", func(t *testing.T) {
		since := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
		// A partner's own sends, named or not; another's, never.
		for _, c := range []struct {
			key, query string
			want       []string
		}{
			{keyA, "sender=" + a + "&since=" + since, []string{ids[a]}},
			{keyA, "status=FAILED&since=" + since, []string{ids[a]}},
			{keyA, "sender=" + b + "&since=" + since, nil},
			{keyB, "route=refused&since=" + since, []string{ids[b]}},
			{ops, "sender=" + b + "&since=" + since, []string{ids[b]}},
		} {
			if got := waitHistoryOf(c.key, c.query, c.want); !slices.Equal(got.ids(), c.want) {
				t.Errorf("GET /transfers?%s = %v, want %v", c.query, got.ids(), c.want)
			}
		}
		// The operator's status query holds both, once the read model has
		// caught up with b's failure too.
		all := func() []string {
			var ids []string
			for cursor := ""; ; {
				var page apiPage
				if code := apiCall(t, ops, "GET", "/transfers?status=FAILED&route=refused&since="+since+"&cursor="+cursor, "", &page); code != 200 {
					t.Fatalf("the operator's FAILED query: %d", code)
				}
				ids = append(ids, page.ids()...)
				if cursor = page.Cursor; cursor == "" {
					return ids
				}
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		got := all()
		for !(slices.Contains(got, ids[a]) && slices.Contains(got, ids[b])) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			got = all()
		}
		if !slices.Contains(got, ids[a]) || !slices.Contains(got, ids[b]) {
			t.Errorf("the operator's FAILED query lacks a's or b's transfer: %v", got)
		}
	})

	t.Run("replay", func(t *testing.T) {
		reason := uniq("partner retries")
		var got struct{ ID, Status string }
		if code := apiCall(t, keyB, "POST", "/transfers/"+ids[a]+"/replay", `{"reason":"not mine"}`, nil); code != 404 {
			t.Errorf("b replays a's transfer: %d, want 404", code)
		}
		if code := apiCall(t, keyA, "POST", "/transfers/"+ids[a]+"/replay", `{"reason":"`+reason+`"}`, &got); code != 202 || got.ID != ids[a] {
			t.Fatalf("a replays its own: %d %+v", code, got)
		}
		r := replayed(t, ids[a])
		if len(r) != 1 || r[0].Reason != reason || !strings.Contains(r[0].Actor, a) {
			t.Errorf("Replayed events %+v, want one by %s for %q", r, a, reason)
		}
	})

	t.Run("refused credentials", func(t *testing.T) {
		var gw struct{ Message string }
		if code := apiCall(t, "", "GET", "/transfers/"+ids[a], "", &gw); code != 401 || gw.Message != "Unauthorized" {
			t.Errorf("no key: %d %+v, want API Gateway's 401", code, gw)
		}
		var e struct{ Error struct{ Code string } }
		if code := apiCall(t, "fry_"+strings.Repeat("a", 52), "GET", "/transfers/"+ids[a], "", &e); code != 401 || e.Error.Code != "unauthorized" {
			t.Errorf("unknown key: %d %+v, want 401 unauthorized", code, e)
		}
	})
}

// TestAPIPostTransfer: a partner posts a binary file of exactly the limit
// (4 MiB, base64-encoded by API Gateway into Lambda's 6 MB), it is
// delivered; the same POST with the same Idempotency-Key answers the same
// transfer and makes no second; a byte over the limit is 413.
func TestAPIPostTransfer(t *testing.T) {
	party := uniq("poster")
	key := apiKey(t, party, "partner")
	body := make([]byte, 4<<20)
	for i := range body {
		body[i] = byte(i * 7)
	}
	sum := sha256.Sum256(body)
	post := func(idem string, body []byte) (int, struct{ ID, URL, Status string }, http.Header) {
		t.Helper()
		stack.mu.Lock()
		base := stack.local.api
		stack.mu.Unlock()
		req, _ := http.NewRequest("POST", base+"/transfers?recipient=partner-a&filename="+party+".bin&subject=posted", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/octet-stream")
		if idem != "" {
			req.Header.Set("Idempotency-Key", idem)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var got struct{ ID, URL, Status string }
		_ = json.NewDecoder(resp.Body).Decode(&got)
		return resp.StatusCode, got, resp.Header
	}

	idem := uniq("idem")
	code, first, hdr := post(idem, body)
	if code != 202 || first.ID == "" || first.URL != "/transfers/"+first.ID || hdr.Get("Location") != first.URL {
		t.Fatalf("POST = %d %+v (Location %q), want 202 with the transfer", code, first, hdr.Get("Location"))
	}
	st := stack.waitFor(t, first.ID, time.Minute, "delivered", delivered)
	if st.Request.Sender != party || st.Request.Route != "to-partner-a" {
		t.Errorf("transfer from %q on %q, want from %s on to-partner-a", st.Request.Sender, st.Request.Route, party)
	}
	if got := stack.objectSHA256(t, "ferry-local-delivered", "partner-a/"+party+".bin"); got != hex.EncodeToString(sum[:]) {
		t.Errorf("delivered sha256 %s, want %x", got, sum)
	}

	code, again, _ := post(idem, body)
	if code != 200 || again.ID != first.ID {
		t.Errorf("the same POST again = %d %+v, want 200 and %s", code, again, first.ID)
	}
	// The object's notification found its transfer made: still one. The
	// read model follows the stream, so wait for it to show the transfer.
	var page store.Page
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		var err error
		if page, err = stack.store.History(context.Background(), store.Query{Sender: party, Since: time.Now().Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if len(page.Items) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(page.Items) != 1 {
		t.Errorf("transfers from %s: %d, want 1", party, len(page.Items))
	}

	if code, _, _ := post("", make([]byte, 4<<20+1)); code != 413 {
		t.Errorf("POST of 4 MiB + 1 = %d, want 413", code)
	}
}

// TestAPIBulkReplay: an operator replays the failed transfers a query
// selects, dry run first, then bounded by max, then again with the same
// reason to go on; a partner may not.
func TestAPIBulkReplay(t *testing.T) {
	start := time.Now().UTC().Add(-time.Second)
	recipient := uniq("bulk-api")
	ids := make([]string, 3)
	for i := range ids {
		ids[i], _ = stack.upload(t, "outbound/refused/"+recipient+"-"+string(rune('a'+i))+".bin", 100, map[string]string{"recipient": recipient})
	}
	for _, id := range ids {
		stack.waitFor(t, id, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
	}
	waitAllFailed(t, ids, start)
	ops := apiKey(t, uniq("ops"), "operator")
	partner := apiKey(t, uniq("partner"), "partner")
	reason := uniq("bucket made")
	body := func(extra string) string {
		return `{"reason":"` + reason + `","route":"refused","recipient":"` + recipient + `","since":"` + start.Format(time.RFC3339) + `"` + extra + `}`
	}
	type result struct {
		DryRun          bool
		Replayed        []string
		AlreadyReplayed int
		Skipped         int
	}
	var r result
	if code := apiCall(t, partner, "POST", "/replays", body(""), nil); code != 403 {
		t.Errorf("a partner's bulk replay: %d, want 403", code)
	}
	if code := apiCall(t, ops, "POST", "/replays", body(`,"dryRun":true`), &r); code != 200 || !r.DryRun || len(r.Replayed) != 3 {
		t.Fatalf("dry run: %d %+v, want 3 that would be replayed", code, r)
	}
	for _, id := range ids {
		if len(replayed(t, id)) != 0 {
			t.Fatalf("the dry run replayed %s", id)
		}
	}
	r = result{}
	if code := apiCall(t, ops, "POST", "/replays", body(`,"max":2`), &r); code != 200 || len(r.Replayed) != 2 || r.Skipped != 1 {
		t.Fatalf("max 2: %d %+v, want 2 replayed, 1 left", code, r)
	}
	first := r.Replayed
	r = result{}
	if code := apiCall(t, ops, "POST", "/replays", body(""), &r); code != 200 || len(r.Replayed) != 1 || slices.Contains(first, r.Replayed[0]) {
		t.Fatalf("again: %d %+v, want the one not yet replayed (first run: %v)", code, r, first)
	}
	for _, id := range ids {
		if got := replayed(t, id); len(got) != 1 || got[0].Reason != reason || !strings.Contains(got[0].Actor, "operator") {
			t.Errorf("%s: replays %+v, want one, by the operator's key, for %q", id, got, reason)
		}
	}
}

// TestAPIUpload: a 64 MiB file through POST /uploads and the presigned URL
// it answers becomes the transfer it promised, sent by the caller's party,
// and is delivered whole, in several chunks. (That S3 refuses a PUT whose
// signed metadata was changed is S3's to enforce; moto does not check
// signatures, so it is not tested here.)
func TestAPIUpload(t *testing.T) {
	party := uniq("uploader")
	key := apiKey(t, party, "partner")
	const size = 64 << 20
	var up struct {
		ID, URL, Method string
		Headers         map[string]string
	}
	req := `{"recipient":"partner-a","filename":"` + party + `.bin","size":` + strconv.Itoa(size) + `,"subject":"big"}`
	if code := apiCall(t, key, "POST", "/uploads", req, &up); code != 201 || up.ID == "" || up.Method != "PUT" || up.Headers["X-Amz-Meta-Sender"] != party {
		t.Fatalf("POST /uploads = %d %+v", code, up)
	}

	put := func(headers map[string]string) *http.Response {
		t.Helper()
		r, err := http.NewRequest("PUT", up.URL, io.LimitReader(&prng{rand.NewPCG(7, 7)}, size))
		if err != nil {
			t.Fatal(err)
		}
		r.ContentLength = size
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := put(up.Headers); resp.StatusCode != 200 {
		t.Fatalf("PUT to the presigned URL = %d", resp.StatusCode)
	}
	st := stack.waitFor(t, up.ID, 2*time.Minute, "delivered", delivered)
	if st.Request.Sender != party || st.Request.Chunks < 2 || st.Request.Size != size {
		t.Errorf("transfer %s: from %q, %d bytes in %d chunks; want %s's 64 MiB in several", up.ID, st.Request.Sender, st.Request.Size, st.Request.Chunks, party)
	}
	h := sha256.New()
	_, _ = io.Copy(h, io.LimitReader(&prng{rand.NewPCG(7, 7)}, size))
	if got := stack.objectSHA256(t, "ferry-local-delivered", "partner-a/"+party+".bin"); got != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("delivered sha256 %s, want the upload's", got)
	}
}

// TestAPIAcknowledge: a route that waits for its recipient's
// acknowledgement delivers, then waits; the recipient's POST .../ack
// records Acknowledged by it. The sender, who sees the transfer, may not
// acknowledge it.
func TestAPIAcknowledge(t *testing.T) {
	sender, recipient := uniq("acks-from"), uniq("acks-to")
	senderKey, recipientKey := apiKey(t, sender, "partner"), apiKey(t, recipient, "partner")
	id, _ := stack.upload(t, "outbound/acked/"+sender+".csv", 2000, map[string]string{"sender": sender, "recipient": recipient})
	stack.waitFor(t, id, time.Minute, "delivered", delivered)
	var got struct{ Status string }
	if code := apiCall(t, recipientKey, "GET", "/transfers/"+id, "", &got); code != 200 || got.Status != "DELIVERED" {
		t.Fatalf("the recipient sees %d %+v, want it DELIVERED, awaiting its acknowledgement", code, got)
	}
	if code := apiCall(t, senderKey, "POST", "/transfers/"+id+"/ack", `{"ref":"not mine"}`, nil); code != 403 {
		t.Errorf("the sender acknowledges: %d, want 403", code)
	}
	if code := apiCall(t, recipientKey, "POST", "/transfers/"+id+"/ack", `{"ref":"rcpt-1"}`, &got); code != 202 || got.Status != "ACKNOWLEDGED" {
		t.Fatalf("the recipient acknowledges: %d %+v", code, got)
	}
	evs := stack.events(t, id)
	if a, ok := evs[len(evs)-1].Payload.(domain.Acknowledged); !ok || a.By != recipient || a.Ref != "rcpt-1" {
		t.Errorf("last event %+v, want Acknowledged by %s, ref rcpt-1", evs[len(evs)-1].Payload, recipient)
	}
	if code := apiCall(t, recipientKey, "POST", "/transfers/"+id+"/ack", `{}`, nil); code != 409 {
		t.Errorf("acknowledged twice: %d, want 409", code)
	}
}

// TestAPIMultipartUpload: a 22 MiB file through POST /uploads in 8 MiB
// parts — a multipart upload, whose parts are PUT to presigned URLs and
// joined by POST /uploads/{id}/complete — becomes the transfer promised
// and is delivered whole. The upload is the caller's alone; a retried
// POST with its Idempotency-Key takes up the same upload; a wrong ETag is
// refused and loses nothing; an abandoned upload is aborted.
func TestAPIMultipartUpload(t *testing.T) {
	party := uniq("parts")
	key, other := apiKey(t, party, "partner"), apiKey(t, uniq("other"), "partner")
	const size, partSize = 22 << 20, 8 << 20
	type part struct {
		Number int
		URL    string
	}
	var up struct {
		ID, Method, Complete string
		PartSize             int64
		PartCount            int
		Parts                []part
		NextPart             *int
	}
	req := `{"recipient":"partner-a","filename":"` + party + `.bin","size":` + strconv.Itoa(size) + `,"partSize":` + strconv.Itoa(partSize) + `}`
	post := func(out any) int {
		t.Helper()
		stack.mu.Lock()
		base := stack.local.api
		stack.mu.Unlock()
		r, _ := http.NewRequest("POST", base+"/uploads", strings.NewReader(req))
		r.Header.Set("Authorization", "Bearer "+key)
		r.Header.Set("Idempotency-Key", party)
		r.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode
	}
	if code := post(&up); code != 201 || up.Method != "multipart" || up.PartSize != partSize || up.PartCount != 3 || len(up.Parts) != 3 || up.NextPart != nil {
		t.Fatalf("POST /uploads = %d %+v, want a multipart upload of 3 parts of 8 MiB", code, up)
	}
	uploadID := func(u string) string {
		t.Helper()
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return p.Query().Get("uploadId")
	}
	again := up
	if code := post(&again); code != 201 || again.ID != up.ID || uploadID(again.Parts[0].URL) != uploadID(up.Parts[0].URL) {
		t.Errorf("the retried POST = %d %s upload %s, want 201 %s upload %s", code, again.ID, uploadID(again.Parts[0].URL), up.ID, uploadID(up.Parts[0].URL))
	}
	var errBody struct{ Error struct{ Code string } }
	if code := apiCall(t, other, "GET", "/uploads/"+up.ID+"/parts", "", &errBody); code != 404 {
		t.Errorf("another party's GET of the parts = %d, want 404", code)
	}
	var page struct{ Parts []part }
	if code := apiCall(t, key, "GET", "/uploads/"+up.ID+"/parts?from=2&count=1", "", &page); code != 200 || len(page.Parts) != 1 || page.Parts[0].Number != 2 {
		t.Fatalf("GET /uploads/%s/parts?from=2&count=1 = %d %+v", up.ID, code, page)
	}
	up.Parts[1] = page.Parts[0] // a fresh URL serves as well as the first

	file := io.LimitReader(&prng{rand.NewPCG(9, 9)}, size)
	type done struct {
		Number int    `json:"number"`
		ETag   string `json:"etag"`
	}
	var parts []done
	for _, p := range up.Parts {
		n := min(partSize, size-int64(p.Number-1)*partSize)
		r, err := http.NewRequest("PUT", p.URL, io.LimitReader(file, n))
		if err != nil {
			t.Fatal(err)
		}
		r.ContentLength = n
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("ETag") == "" {
			t.Fatalf("PUT part %d = %d, ETag %q", p.Number, resp.StatusCode, resp.Header.Get("ETag"))
		}
		parts = append(parts, done{p.Number, resp.Header.Get("ETag")})
	}
	body := func(ps []done) string {
		b, _ := json.Marshal(map[string]any{"parts": ps})
		return string(b)
	}
	wrong := slices.Clone(parts)
	wrong[1].ETag = `"0123456789abcdef0123456789abcdef"`
	if code := apiCall(t, key, "POST", up.Complete, body(wrong), &errBody); code != 400 || errBody.Error.Code != "bad_request" {
		t.Errorf("complete with a wrong ETag = %d %+v, want 400", code, errBody)
	}
	if code := apiCall(t, other, "POST", up.Complete, body(parts), &errBody); code != 404 {
		t.Errorf("another party's complete = %d, want 404", code)
	}
	var completed struct{ ID, URL string }
	if code := apiCall(t, key, "POST", up.Complete, body(parts), &completed); code != 202 || completed.ID != up.ID {
		t.Fatalf("complete = %d %+v, want 202 %s", code, completed, up.ID)
	}
	st := stack.waitFor(t, up.ID, 2*time.Minute, "delivered", delivered)
	if st.Request.Sender != party || st.Request.Size != size || st.Request.Chunks < 2 {
		t.Errorf("transfer %s: from %q, %d bytes in %d chunks; want %s's 22 MiB in several", up.ID, st.Request.Sender, st.Request.Size, st.Request.Chunks, party)
	}
	h := sha256.New()
	_, _ = io.Copy(h, io.LimitReader(&prng{rand.NewPCG(9, 9)}, size))
	if got := stack.objectSHA256(t, "ferry-local-delivered", "partner-a/"+party+".bin"); got != hex.EncodeToString(h.Sum(nil)) {
		t.Errorf("delivered sha256 %s, want the upload's", got)
	}
	if code := apiCall(t, key, "GET", "/uploads/"+up.ID+"/parts", "", &errBody); code != 404 {
		t.Errorf("GET of a completed upload's parts = %d, want 404", code)
	}

	var abandoned struct{ ID string }
	if code := apiCall(t, key, "POST", "/uploads", `{"recipient":"partner-a","filename":"gone.bin","size":1,"multipart":true}`, &abandoned); code != 201 {
		t.Fatalf("POST /uploads (multipart) = %d", code)
	}
	if code := apiCall(t, other, "DELETE", "/uploads/"+abandoned.ID, "", &errBody); code != 404 {
		t.Errorf("another party's DELETE = %d, want 404", code)
	}
	if code := apiCall(t, key, "DELETE", "/uploads/"+abandoned.ID, "", nil); code != 204 {
		t.Errorf("DELETE /uploads/%s = %d, want 204", abandoned.ID, code)
	}
	if code := apiCall(t, key, "GET", "/uploads/"+abandoned.ID+"/parts", "", &errBody); code != 404 {
		t.Errorf("GET of an aborted upload's parts = %d, want 404", code)
	}
}
