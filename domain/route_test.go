package domain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

const routesJSON = `{
  "routes": [
    {
      "name": "to-partner",
      "match": {"bucket": "inbound", "prefix": "outbound/partner/", "sender": "X26ABC1"},
      "destination": {"type": "s3", "bucket": "partner-drop", "prefix": "in/"},
      "require": ["sender", "recipient", "filename"],
      "chunkSize": "16MiB",
      "retry": {"maxAttempts": 5, "baseDelay": "30s", "maxDelay": "10m"}
    },
    {
      "name": "catch-all",
      "match": {},
      "destination": {"type": "null"}
    }
  ]
}`

func TestParseRoutes(t *testing.T) {
	got, err := ParseRoutes([]byte(routesJSON))
	if err != nil {
		t.Fatal(err)
	}
	want := Routes{Routes: []Route{
		{
			Name:        "to-partner",
			Match:       Match{Bucket: "inbound", Prefix: "outbound/partner/", Sender: "X26ABC1"},
			Destination: Destination{Type: "s3", Bucket: "partner-drop", Prefix: "in/"},
			Require:     []string{"sender", "recipient", "filename"},
			ChunkSize:   16 * MiB,
			Retry:       RetryPolicy{MaxAttempts: 5, BaseDelay: Duration(30 * time.Second), MaxDelay: Duration(10 * time.Minute)},
		},
		{Name: "catch-all", Destination: Destination{Type: "null"}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseRoutes =\n%+v\nwant\n%+v", got, want)
	}
}

// TestParseRoutesMESH: a table may carry a "mesh" section, kept verbatim for
// the mesh transport to read (the domain does not look inside it), and routes
// may deliver to MESH with no other destination fields.
func TestParseRoutesMESH(t *testing.T) {
	const mesh = `{"url": "https://msg.intspineservices.nhs.uk", "mailboxes": [{"id": "X26OT001", "poll": "5m"}], "anything": {"the": ["transport", "decides"]}}`
	data := `{
  "routes": [
    {"name": "to-mesh", "match": {"prefix": "outbound/mesh/"}, "destination": {"type": "mesh"}, "require": ["sender", "recipient", "workflow"], "chunkSize": "1MiB"},
    {"name": "catch-all", "destination": {"type": "null"}}
  ],
  "mesh": ` + mesh + `
}`
	got, err := ParseRoutes([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	wantRoutes := []Route{
		{Name: "to-mesh", Match: Match{Prefix: "outbound/mesh/"}, Destination: Destination{Type: "mesh"}, Require: []string{"sender", "recipient", "workflow"}, ChunkSize: 1 * MiB},
		{Name: "catch-all", Destination: Destination{Type: "null"}},
	}
	if !reflect.DeepEqual(got.Routes, wantRoutes) {
		t.Errorf("routes =\n%+v\nwant\n%+v", got.Routes, wantRoutes)
	}
	if string(got.MESH) != mesh {
		t.Errorf("Mesh = %s\nwant it verbatim: %s", got.MESH, mesh)
	}
	r, ok := got.Find(Upload{Key: "outbound/mesh/a.csv"})
	if !ok || r.Destination != (Destination{Type: "mesh"}) {
		t.Errorf("Find = %+v, %t; want the mesh route", r, ok)
	}
	t.Run("round trip", func(t *testing.T) {
		out, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseRoutes(out)
		if err != nil {
			t.Fatalf("ParseRoutes(%s): %v", out, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, []byte(mesh)); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(again.Routes, got.Routes) || !bytes.Equal(again.MESH, compact.Bytes()) {
			t.Errorf("after a round trip:\n got %+v mesh %s\nwant %+v mesh %s", again.Routes, again.MESH, got.Routes, compact.Bytes())
		}
	})
	t.Run("no mesh section", func(t *testing.T) {
		rs, err := ParseRoutes([]byte(`{"routes": [{"name": "m", "destination": {"type": "mesh"}}]}`))
		if err != nil {
			t.Fatal(err)
		}
		if rs.MESH != nil {
			t.Errorf("Mesh = %s, want nil", rs.MESH)
		}
		out, err := json.Marshal(rs)
		if err != nil || strings.Contains(string(out), `"mesh":`) {
			t.Errorf("Marshal = %s, %v; want no mesh section", out, err)
		}
	})
	t.Run("a broken mesh section is still an error", func(t *testing.T) {
		if rs, err := ParseRoutes([]byte(`{"routes": [{"name": "m", "destination": {"type": "mesh"}}], "mesh": {"url": }`)); err == nil {
			t.Errorf("ParseRoutes accepted %+v", rs)
		}
	})
}

// TestParseRoutesEndpoints: a destination names an endpoint of its type's
// section, whose settings reach the transport verbatim.
func TestParseRoutesEndpoints(t *testing.T) {
	const partner = `{"host": "sftp.example.org", "anything": ["the transport decides"]}`
	rs, err := ParseRoutes([]byte(`{
  "routes": [
    {"name": "to-partner", "destination": {"type": "sftp", "endpoint": "partner"}},
    {"name": "to-api", "destination": {"type": "https", "endpoint": "api"}},
    {"name": "to-lake", "destination": {"type": "azblob", "endpoint": "lake"}}
  ],
  "sftp": {"partner": ` + partner + `},
  "https": {"api": {}},
  "azblob": {"lake": {}}
}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rs.Endpoints("sftp")["partner"]); got != partner {
		t.Errorf("sftp endpoint partner = %s, want it verbatim: %s", got, partner)
	}
	for typ, name := range map[string]string{"https": "api", "azblob": "lake"} {
		if _, ok := rs.Endpoints(typ)[name]; !ok {
			t.Errorf("Endpoints(%q) has no %q: %v", typ, name, rs.Endpoints(typ))
		}
	}
	if rs.Endpoints("s3") != nil || rs.Endpoints("mesh") != nil {
		t.Error("s3 and mesh destinations have no endpoint sections")
	}
	if _, err := ParseRoutes([]byte(`{"routes": [{"name": "a", "destination": {"type": "sftp", "endpoint": "p"}}], "sftp": {"p": {}}, "ftp": {}}`)); err == nil || !strings.Contains(err.Error(), "ftp") {
		t.Errorf("an unknown section: err = %v, want it named", err)
	}
}

// TestParseRoutesReportsEveryProblem: one broken table, every problem in one
// error, each a separate member of an errors.Join.
func TestParseRoutesReportsEveryProblem(t *testing.T) {
	const bad = `{"routes": [
	  {"name": "", "destination": {"type": "null"}},
	  {"name": "a", "destination": {"type": "null"}},
	  {"name": "a", "destination": {"type": "null"}},
	  {"name": "no-type", "destination": {}},
	  {"name": "ftp", "destination": {"type": "ftp"}},
	  {"name": "mesh-is-fine", "destination": {"type": "mesh"}},
	  {"name": "s3-no-bucket", "destination": {"type": "s3"}},
	  {"name": "negative-chunk", "destination": {"type": "null"}, "chunkSize": -1},
	  {"name": "small-s3-chunk", "destination": {"type": "s3", "bucket": "b"}, "chunkSize": "4MiB"},
	  {"name": "bad-require", "destination": {"type": "null"}, "require": ["sender", "shoe-size"]},
	  {"name": "negative-attempts", "destination": {"type": "null"}, "retry": {"maxAttempts": -1}},
	  {"name": "negative-delay", "destination": {"type": "null"}, "retry": {"baseDelay": "-1s"}},
	  {"name": "base-over-max", "destination": {"type": "null"}, "retry": {"baseDelay": "2m", "maxDelay": "1m"}},
	  {"name": "sftp-no-endpoint", "destination": {"type": "sftp"}},
	  {"name": "https-unknown-endpoint", "destination": {"type": "https", "endpoint": "nowhere"}},
	  {"name": "azblob-fine", "destination": {"type": "azblob", "endpoint": "lake"}}
	], "azblob": {"lake": {}}}`
	wantProblems := []string{
		"route 1 (): name is missing",
		"route 3 (a): name is used twice",
		"route 4 (no-type): destination type is missing",
		`route 5 (ftp): unknown destination type "ftp"`,
		"route 7 (s3-no-bucket): s3 destination needs a bucket",
		"route 8 (negative-chunk): chunk size must be positive",
		"route 9 (small-s3-chunk): s3 destinations need chunks of at least 5MiB",
		`route 10 (bad-require): cannot require unknown metadata field "shoe-size"`,
		"route 11 (negative-attempts): retry: maxAttempts must not be negative",
		"route 12 (negative-delay): retry: delays must not be negative",
		"route 13 (base-over-max): retry: baseDelay is longer than maxDelay",
		"route 14 (sftp-no-endpoint): sftp destination needs an endpoint (a name in the routing file's sftp section)",
		`route 15 (https-unknown-endpoint): https endpoint "nowhere" is not defined in the routing file's https section`,
	}
	rs, err := ParseRoutes([]byte(bad))
	if err == nil {
		t.Fatalf("ParseRoutes accepted %+v", rs)
	}
	if len(rs.Routes) != 0 {
		t.Errorf("ParseRoutes returned %d routes with its error", len(rs.Routes))
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "routes: ") {
		t.Errorf("error %q does not start with \"routes: \"", msg)
	}
	for _, p := range wantProblems {
		if !strings.Contains(msg, p) {
			t.Errorf("error does not mention %q:\n%s", p, msg)
		}
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %T is not a joined error", errors.Unwrap(err))
	}
	if got := len(joined.Unwrap()); got != len(wantProblems) {
		t.Errorf("%d problems reported, want %d:\n%s", got, len(wantProblems), msg)
	}
}

func TestParseRoutesRejects(t *testing.T) {
	for _, tc := range []struct{ name, json, want string }{
		{"not JSON", `{"routes": [`, "routes: "},
		{"empty table", `{"routes": []}`, "no routes defined"},
		{"no routes key", `{}`, "no routes defined"},
		{"unknown field (a typo)", `{"routes": [{"name": "a", "destination": {"type": "null"}, "chunk_size": 5}]}`, "chunk_size"},
		{"unknown top-level field", `{"routes": [{"name": "a", "destination": {"type": "null"}}], "version": 2}`, "version"},
		{"bad size unit", `{"routes": [{"name": "a", "destination": {"type": "null"}, "chunkSize": "20MB"}]}`, "20MB"},
		{"bad duration", `{"routes": [{"name": "a", "destination": {"type": "null"}, "retry": {"baseDelay": "soon"}}]}`, "soon"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := ParseRoutes([]byte(tc.json))
			if err == nil {
				t.Fatalf("ParseRoutes accepted %+v", rs)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestRoutesFind(t *testing.T) {
	rs := Routes{Routes: []Route{
		{Name: "partner-wf", Match: Match{Bucket: "inbound", Prefix: "outbound/", Sender: "X26ABC1", Workflow: "WF_A"}, Destination: Destination{Type: "null"}, ChunkSize: 8 * MiB},
		{Name: "partner", Match: Match{Bucket: "inbound", Prefix: "outbound/", Sender: "X26ABC1"}, Destination: Destination{Type: "null"}},
		{Name: "to-recipient", Match: Match{Recipient: "X26ABC9"}, Destination: Destination{Type: "null"}, Retry: RetryPolicy{MaxAttempts: 2}},
		{Name: "other-bucket", Match: Match{Bucket: "archive"}, Destination: Destination{Type: "null"}},
	}}
	for _, tc := range []struct {
		name   string
		upload Upload
		want   string // "" for no match
	}{
		{"most specific first", Upload{Bucket: "inbound", Key: "outbound/a.csv", Sender: "X26ABC1", Workflow: "WF_A"}, "partner-wf"},
		{"first match wins over later ones", Upload{Bucket: "inbound", Key: "outbound/a.csv", Sender: "X26ABC1", Recipient: "X26ABC9", Workflow: "WF_A"}, "partner-wf"},
		{"other workflow falls through", Upload{Bucket: "inbound", Key: "outbound/a.csv", Sender: "X26ABC1", Workflow: "WF_B"}, "partner"},
		{"workflow is case-sensitive", Upload{Bucket: "inbound", Key: "outbound/a.csv", Sender: "X26ABC1", Workflow: "wf_a"}, "partner"},
		{"sender is case-insensitive", Upload{Bucket: "inbound", Key: "outbound/a.csv", Sender: "x26abc1"}, "partner"},
		{"recipient is case-insensitive", Upload{Bucket: "inbound", Key: "x", Recipient: "x26AbC9"}, "to-recipient"},
		{"prefix must be a prefix", Upload{Bucket: "inbound", Key: "in/outbound/a.csv", Sender: "X26ABC1"}, ""},
		{"prefix is case-sensitive, as S3 keys are", Upload{Bucket: "inbound", Key: "Outbound/a.csv", Sender: "X26ABC1"}, ""},
		{"bucket must match", Upload{Bucket: "inbound-2", Key: "outbound/a.csv", Sender: "X26ABC1"}, ""},
		{"other sender", Upload{Bucket: "inbound", Key: "outbound/a.csv", Sender: "X26ABC2"}, ""},
		{"missing sender does not match a required one", Upload{Bucket: "inbound", Key: "outbound/a.csv"}, ""},
		{"empty fields match anything", Upload{Bucket: "archive", Key: "any/thing", Sender: "whoever"}, "other-bucket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := rs.Find(tc.upload)
			if ok != (tc.want != "") || got.Name != tc.want {
				t.Errorf("Find = %q, %t; want %q, %t", got.Name, ok, tc.want, tc.want != "")
			}
			if !ok && !reflect.DeepEqual(got, Route{}) {
				t.Errorf("no match returned %+v", got)
			}
		})
	}
	t.Run("empty match matches every upload", func(t *testing.T) {
		all := Routes{Routes: []Route{{Name: "all", Destination: Destination{Type: "null"}}}}
		for _, u := range []Upload{{}, {Bucket: "b", Key: "k", Sender: "s", Recipient: "r", Workflow: "w"}} {
			if got, ok := all.Find(u); !ok || got.Name != "all" {
				t.Errorf("Find(%+v) = %q, %t", u, got.Name, ok)
			}
		}
	})
	t.Run("empty table matches nothing", func(t *testing.T) {
		if got, ok := (Routes{}).Find(Upload{Bucket: "b"}); ok {
			t.Errorf("Find = %+v", got)
		}
	})
}

func TestRoutesFindHas(t *testing.T) {
	rs := Routes{Routes: []Route{
		{Name: "mesh-by-metadata", Match: Match{Bucket: "b", Prefix: "outbound/", Has: []string{"mex-From", "mex-to"}}, Destination: Destination{Type: "mesh"}},
		{Name: "s3", Match: Match{Bucket: "b", Prefix: "outbound/"}, Destination: Destination{Type: "null"}},
	}}
	for _, tc := range []struct {
		name string
		md   map[string]string
		want string
	}{
		{"every key present", map[string]string{"mex-from": "X26ABC1", "mex-to": "X26ABC2"}, "mesh-by-metadata"},
		{"one key missing falls through", map[string]string{"mex-from": "X26ABC1"}, "s3"},
		{"an empty value counts as missing", map[string]string{"mex-from": "X26ABC1", "mex-to": " "}, "s3"},
		{"no metadata", nil, "s3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := rs.Find(Upload{Bucket: "b", Key: "outbound/X26ABC1/a.json", Metadata: tc.md})
			if !ok || got.Name != tc.want {
				t.Errorf("Find = %q, %t; want %q", got.Name, ok, tc.want)
			}
		})
	}
	t.Run("an empty key is a configuration error", func(t *testing.T) {
		bad := Routes{Routes: []Route{{Name: "r", Match: Match{Has: []string{""}}, Destination: Destination{Type: "null"}}}}
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "match.has") {
			t.Errorf("Validate = %v, want a match.has problem", err)
		}
	})
}

func TestRoutesFindAppliesDefaults(t *testing.T) {
	rs := Routes{Routes: []Route{
		{Name: "bare", Match: Match{Prefix: "bare/"}, Destination: Destination{Type: "null"}},
		{Name: "partial", Match: Match{Prefix: "partial/"}, Destination: Destination{Type: "null"}, ChunkSize: 8 * MiB,
			Retry: RetryPolicy{MaxAttempts: 3, MaxDelay: Duration(time.Minute)}},
	}}
	t.Run("a route that says nothing gets every default", func(t *testing.T) {
		got, _ := rs.Find(Upload{Key: "bare/x"})
		if got.ChunkSize != 20*MiB || int64(got.ChunkSize) != DefaultChunkSize {
			t.Errorf("ChunkSize = %d, want 20 MiB", got.ChunkSize)
		}
		want := RetryPolicy{MaxAttempts: 6, BaseDelay: Duration(10 * time.Second), MaxDelay: Duration(15 * time.Minute)}
		if got.Retry != want || got.Retry != DefaultRetryPolicy {
			t.Errorf("Retry = %+v, want %+v", got.Retry, want)
		}
	})
	t.Run("defaults fill only what is missing", func(t *testing.T) {
		got, _ := rs.Find(Upload{Key: "partial/x"})
		want := RetryPolicy{MaxAttempts: 3, BaseDelay: DefaultRetryPolicy.BaseDelay, MaxDelay: Duration(time.Minute)}
		if got.ChunkSize != 8*MiB || got.Retry != want {
			t.Errorf("got chunk size %d retry %+v; want %d, %+v", got.ChunkSize, got.Retry, 8*MiB, want)
		}
	})
	t.Run("the table itself is left alone", func(t *testing.T) {
		rs.Find(Upload{Key: "bare/x"})
		if rs.Routes[0].ChunkSize != 0 || rs.Routes[0].Retry != (RetryPolicy{}) {
			t.Errorf("Find changed the table: %+v", rs.Routes[0])
		}
	})
	t.Run("a found route plans a valid request", func(t *testing.T) {
		got, _ := rs.Find(Upload{Key: "bare/x"})
		r := Requested{Destination: got.Destination, Size: 50 * MiB, ChunkSize: int64(got.ChunkSize), Retry: got.Retry}
		events, err := Decide(State{}, Request{Requested: r}, t0)
		if err != nil {
			t.Fatal(err)
		}
		if c := events[0].Payload.(Requested).Chunks; c != 3 {
			t.Errorf("50 MiB in default chunks = %d chunks, want 3", c)
		}
	})
}

func TestDestinationValidate(t *testing.T) {
	for _, tc := range []struct {
		d    Destination
		want string // "" for valid
	}{
		{Destination{Type: "null"}, ""},
		{Destination{Type: "mesh"}, ""},
		{Destination{Type: "MESH"}, `unknown destination type "MESH"`},
		{Destination{Type: "s3", Bucket: "b"}, ""},
		{Destination{Type: "s3", Bucket: "b", Prefix: "p/"}, ""},
		{Destination{Type: "s3"}, "needs a bucket"},
		{Destination{Type: "sftp", Endpoint: "partner"}, ""},
		{Destination{Type: "sftp"}, "sftp destination needs an endpoint"},
		{Destination{}, "type is missing"},
		{Destination{Type: "S3", Bucket: "b"}, `unknown destination type "S3"`},
	} {
		err := tc.d.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v.Validate() = %v, want %q", tc.d, err, tc.want)
		}
	}
}

func TestRetryPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		p    RetryPolicy
		want []string
	}{
		{RetryPolicy{}, nil},
		{DefaultRetryPolicy, nil},
		{RetryPolicy{BaseDelay: Duration(time.Hour)}, nil}, // MaxDelay left to its default
		{RetryPolicy{BaseDelay: Duration(time.Minute), MaxDelay: Duration(time.Minute)}, nil},
		{RetryPolicy{MaxAttempts: -1}, []string{"maxAttempts"}},
		{RetryPolicy{MaxDelay: Duration(-1)}, []string{"negative"}},
		{RetryPolicy{MaxAttempts: -2, BaseDelay: Duration(-time.Second), MaxDelay: Duration(time.Second)}, []string{"maxAttempts", "negative"}},
		{RetryPolicy{BaseDelay: Duration(2 * time.Second), MaxDelay: Duration(time.Second)}, []string{"longer than maxDelay"}},
	} {
		err := tc.p.Validate()
		if (err == nil) != (tc.want == nil) {
			t.Errorf("%+v.Validate() = %v, want problems %q", tc.p, err, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v.Validate() = %v, want it to mention %q", tc.p, err, w)
			}
		}
	}
}

func TestBackoff(t *testing.T) {
	p := RetryPolicy{BaseDelay: Duration(time.Second), MaxDelay: Duration(10 * time.Second)}
	for attempt, want := range map[int]time.Duration{
		-1: time.Second, 0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		4: 8 * time.Second, 5: 10 * time.Second, 50: 10 * time.Second, 1 << 30: 10 * time.Second,
	} {
		if got := p.Backoff(attempt); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", attempt, got, want)
		}
	}
	t.Run("defaults", func(t *testing.T) {
		var p RetryPolicy
		for attempt, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 7: 640 * time.Second, 8: 15 * time.Minute, 9: 15 * time.Minute} {
			if got := p.Backoff(attempt); got != want {
				t.Errorf("Backoff(%d) = %v, want %v", attempt, got, want)
			}
		}
	})
	t.Run("huge MaxDelay does not overflow", func(t *testing.T) {
		p := RetryPolicy{BaseDelay: Duration(time.Second), MaxDelay: Duration(1<<63 - 1)}
		if got, want := p.Backoff(80), time.Duration(1<<63-1); got != want {
			t.Errorf("Backoff(80) = %v, want %v", got, want)
		}
	})
}

// TestDelay: a retry waits its backoff less a jitter of at most a fifth,
// the same for the same transfer and attempt, spread across transfers.
func TestDelay(t *testing.T) {
	p := RetryPolicy{BaseDelay: Duration(time.Second), MaxDelay: Duration(time.Minute)}
	distinct := map[time.Duration]bool{}
	for i := range 200 {
		id := fmt.Sprintf("01TRANSFER%04d", i)
		for attempt := 1; attempt <= 8; attempt++ {
			d, full := p.Delay(id, attempt), p.Backoff(attempt)
			if low := full - time.Duration(float64(full)*RetryJitter); d > full || d < low {
				t.Fatalf("Delay(%s, %d) = %v, want within [%v, %v]", id, attempt, d, low, full)
			}
			if again := p.Delay(id, attempt); again != d {
				t.Fatalf("Delay(%s, %d) = %v then %v", id, attempt, d, again)
			}
		}
		distinct[p.Delay(id, 3)] = true
	}
	// 200 transfers failing at once must not come back at one instant:
	// expect nearly every delay to differ.
	if len(distinct) < 190 {
		t.Errorf("200 transfers got %d distinct delays for attempt 3, want the jitter to spread them", len(distinct))
	}
	var lo, hi int
	for d := range distinct {
		if d < 4*time.Second-400*time.Millisecond {
			lo++
		} else {
			hi++
		}
	}
	if lo < 60 || hi < 60 {
		t.Errorf("jitter is lopsided: %d delays in the lower half of the range, %d in the upper", lo, hi)
	}
}

func TestByteSizeJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ByteSize
	}{
		{`0`, 0}, {`123`, 123}, {`-1`, -1}, // a negative number parses; Validate refuses it
		{`"42"`, 42}, {`"7B"`, 7}, {`"512KiB"`, 512 << 10}, {`"16MiB"`, 16 << 20}, {`"1GiB"`, 1 << 30},
		{`" 3 MiB "`, 3 << 20}, {`"8191GiB"`, 8191 << 30},
	} {
		var got ByteSize
		if err := json.Unmarshal([]byte(tc.in), &got); err != nil || got != tc.want {
			t.Errorf("ByteSize(%s) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	for _, in := range []string{
		`"20MB"`, `"20 mib"`, `"-1MiB"`, `"1.5MiB"`, `""`, `"MiB"`, `1.5`, `true`, `{}`,
		`"9999999999999999999"`, `"9999999999GiB"`, `"8589934592GiB"`, // beyond int64
	} {
		got := ByteSize(77)
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("ByteSize(%s) = %d, want an error", in, got)
		}
	}
}

func TestDurationJSON(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{`"10s"`, 10 * time.Second}, {`"1m30s"`, 90 * time.Second}, {`"15m"`, 15 * time.Minute}, {`"0s"`, 0},
		{`1000000000`, time.Second}, {`0`, 0}, {`"-1s"`, -time.Second}, // negative parses; Validate refuses it
	} {
		var got Duration
		if err := json.Unmarshal([]byte(tc.in), &got); err != nil || time.Duration(got) != tc.want {
			t.Errorf("Duration(%s) = %v, %v; want %v", tc.in, time.Duration(got), err, tc.want)
		}
	}
	for _, in := range []string{`"ten seconds"`, `"10"`, `""`, `1.5`, `true`, `{}`, `"1y"`} {
		got := Duration(77)
		if err := json.Unmarshal([]byte(in), &got); err == nil {
			t.Errorf("Duration(%s) = %v, want an error", in, time.Duration(got))
		}
	}
	t.Run("round trip", func(t *testing.T) {
		for _, d := range []time.Duration{0, time.Nanosecond, 10 * time.Second, 90 * time.Minute, 1<<63 - 1} {
			data, err := json.Marshal(Duration(d))
			if err != nil {
				t.Fatal(err)
			}
			var got Duration
			if err := json.Unmarshal(data, &got); err != nil || time.Duration(got) != d {
				t.Errorf("%v → %s → %v, %v", d, data, time.Duration(got), err)
			}
		}
		if data, _ := json.Marshal(Duration(90 * time.Second)); string(data) != `"1m30s"` {
			t.Errorf("Duration(90s) marshals as %s, want \"1m30s\"", data)
		}
	})
}

func TestExplain(t *testing.T) {
	rs := Routes{Routes: []Route{
		{Name: "lab", Match: Match{Bucket: "in", Prefix: "outbound/lab/", Sender: "LAB"}, Destination: Destination{Type: "null"}},
		{Name: "daily", Match: Match{Prefix: "outbound/", Workflow: "DAILY", Has: []string{"localid"}}, Destination: Destination{Type: "null"}},
		{Name: "rest", Match: Match{Prefix: "outbound/"}, Destination: Destination{Type: "null"}},
	}}
	for _, c := range []struct {
		u       Upload
		route   string
		skipped []string
	}{
		{Upload{Bucket: "in", Key: "outbound/lab/a", Sender: "lab"}, "lab", nil},
		{Upload{Bucket: "other", Key: "outbound/lab/a", Workflow: "DAILY", Metadata: map[string]string{"localid": "7"}}, "daily",
			[]string{`route 1 (lab): bucket is "other", not "in"`}},
		{Upload{Bucket: "in", Key: "outbound/x", Workflow: "DAILY"}, "rest",
			[]string{`route 1 (lab): key "outbound/x" does not start with "outbound/lab/"`, `route 2 (daily): no "localid" metadata`}},
		{Upload{Bucket: "in", Key: "inbound/x"}, "",
			[]string{`route 1 (lab): key "inbound/x" does not start with "outbound/lab/"`, `route 2 (daily): key "inbound/x" does not start with "outbound/"`, `route 3 (rest): key "inbound/x" does not start with "outbound/"`}},
	} {
		r, skipped, ok := rs.Explain(c.u)
		if r.Name != c.route || ok != (c.route != "") || !slices.Equal(skipped, c.skipped) {
			t.Errorf("Explain(%+v) = %s %v %t, want %s %v", c.u, r.Name, skipped, ok, c.route, c.skipped)
		}
		if f, ok := rs.Find(c.u); f.Name != r.Name || ok != (c.route != "") {
			t.Errorf("Find disagrees with Explain on %+v", c.u)
		}
	}
}
