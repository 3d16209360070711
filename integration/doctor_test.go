//go:build integration

package integration

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"golang.org/x/crypto/ssh"

	"github.com/ferryhq/ferry/functions/health"
	"github.com/ferryhq/ferry/internal/app"
	"github.com/ferryhq/ferry/store"
)

// doctor runs `ferry doctor --json` with args and returns its results by
// partner and its exit code.
func doctor(t *testing.T, args ...string) (map[string]health.Result, int) {
	t.Helper()
	out, code := stack.ferry(t, append([]string{"doctor", "--json"}, args...)...)
	start := strings.Index(out, "[")
	var rs []health.Result
	if start < 0 || json.Unmarshal([]byte(out[start:strings.LastIndex(out, "]")+1]), &rs) != nil {
		t.Fatalf("ferry doctor printed no JSON results (exit %d):\n%s", code, out)
	}
	m := map[string]health.Result{}
	for _, r := range rs {
		m[r.Partner] = r
	}
	return m, code
}

// TestDoctor: ferry doctor checks every destination of the test stack's
// routing table without sending anything, and reports each problem the
// way an operator needs it: which partner, what kind of failure, why.
func TestDoctor(t *testing.T) {
	t.Run("the stack's partners", func(t *testing.T) {
		rs, code := doctor(t, "--routes", stack.routes)
		for _, p := range []string{"s3 ferry-local-delivered", "sftp partner", "https peer", "azblob lake", "email mailpit", "mesh X26ABC1", "mesh X26ABC3"} {
			if r, ok := rs[p]; !ok || !r.Healthy {
				t.Errorf("%s: %+v, want healthy", p, r)
			}
		}
		// The table's deliberate mistakes: a mailbox with a wrong password
		// and a route to a bucket that does not exist.
		if r := rs["mesh X26ABC2"]; r.Healthy || r.Kind != "unauthorized" {
			t.Errorf("mesh X26ABC2 (wrong password): %+v, want unhealthy, unauthorized", r)
		}
		if r := rs["s3 ferry-integration-missing"]; r.Healthy || r.Kind != "not_found" || !strings.Contains(r.Reason, "ferry-integration-missing") {
			t.Errorf("s3 ferry-integration-missing: %+v, want unhealthy, not_found, naming the bucket", r)
		}
		if r := rs["https peer"]; len(r.Credentials) != 1 || len(r.Expiring) != 0 {
			t.Errorf("https peer's CA bundle: credentials %+v, expiring %+v; want its one certificate, not expiring", r.Credentials, r.Expiring)
		}
		if code != 1 {
			t.Errorf("exit %d with unhealthy partners, want 1", code)
		}
		out, code := stack.ferry(t, "doctor", "--routes", stack.routes, "--route", "sftp-peer")
		if code != 0 || !strings.Contains(out, "sftp partner") || !strings.Contains(out, "1 partner checked: 1 healthy") {
			t.Errorf("doctor --route sftp-peer: exit %d\n%s", code, out)
		}
		if out, code := stack.ferry(t, "doctor", "--routes", stack.routes, "--route", "no-such-route"); code != 1 || !strings.Contains(out, `no route is named "no-such-route"`) {
			t.Errorf("doctor --route no-such-route: exit %d\n%s", code, out)
		}
	})

	t.Run("a stopped MESH, a wrong SFTP key, an expired certificate, one expiring", func(t *testing.T) {
		now := time.Now()
		// A key whose secret says it expires in 20 days (the ferry:expires tag).
		wrongKey := secret(t, "sftp-wrong-key", string(ed25519Key(t)), app.ExpiresTag, now.Add(20*24*time.Hour).Format(time.RFC3339))
		expiredCert, expiredKey := certAndKey(t, "doctor-expired", now.Add(-24*time.Hour))
		clientCert := secret(t, "https-expired-cert", expiredCert)
		clientKey := secret(t, "https-expired-key", expiredKey)
		routes := stackRoutes(t)
		// Nothing listens on a port just closed: the MESH server is down.
		routes["mesh"].(map[string]any)["url"] = fmt.Sprintf("https://127.0.0.1:%d", freePort())
		routes["sftp"].(map[string]any)["partner"].(map[string]any)["privateKey"] = wrongKey
		https := routes["https"].(map[string]any)
		soon, soonBundle := expiringPeer(t, https["peer"].(map[string]any), "doctor-soon")
		https["peer-soon"] = soon
		peer := https["peer"].(map[string]any)
		peer["clientCert"], peer["clientKey"] = clientCert, clientKey
		var keep []any
		for _, r := range routes["routes"].([]any) {
			switch r.(map[string]any)["name"] {
			case "sftp-peer", "https-peer", "mesh-out":
				keep = append(keep, r)
			}
		}
		keep = append(keep, map[string]any{"name": "https-soon", "match": map[string]any{"prefix": "outbound/doctor-soon/"},
			"destination": map[string]any{"type": "https", "endpoint": "peer-soon"}})
		routes["routes"] = keep
		file := writeRoutes(t, routes)

		rs, code := doctor(t, "--routes", file, "--timeout", "10s")
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		for _, p := range []string{"mesh X26ABC1", "mesh X26ABC2", "mesh X26ABC3"} {
			if r := rs[p]; r.Healthy || r.Kind != "unavailable" || !strings.Contains(r.Reason, "refused") {
				t.Errorf("%s with the server down: %+v, want unavailable, connection refused", p, r)
			}
		}
		if r := rs["sftp partner"]; r.Healthy || r.Kind != "unauthorized" {
			t.Errorf("sftp partner with a wrong key: %+v, want unauthorized", r)
		}
		if r := rs["sftp partner"]; len(r.Expiring) != 1 || r.Expiring[0].Name != "privateKey "+wrongKey || r.Expiring[0].Expires.Before(now.Add(19*24*time.Hour)) {
			t.Errorf("sftp partner's key tagged to expire in 20 days: expiring %+v", r.Expiring)
		}
		if r := rs["https peer"]; r.Healthy || r.Code != "CERTIFICATE_EXPIRED" || !strings.Contains(r.Reason, "CN=doctor-expired") {
			t.Errorf("https peer with an expired client certificate: %+v, want CERTIFICATE_EXPIRED naming it", r)
		}
		r := rs["https peer-soon"]
		if !r.Healthy || len(r.Expiring) != 1 || r.Expiring[0].Subject != "CN=doctor-soon" {
			t.Errorf("https peer-soon: %+v, want healthy with CN=doctor-soon expiring", r)
		}
		text, _ := stack.ferry(t, "doctor", "--routes", file, "--timeout", "10s")
		for _, want := range []string{"certificates expiring within 30 days:", "https peer-soon: caBundle " + soonBundle + " (CN=doctor-soon) expires", "(9 days left)",
			"https peer: clientCert " + clientCert + " (CN=doctor-expired) EXPIRED", "(1 day ago)", "UNHEALTHY (unauthorized)", "6 partners checked: 1 healthy, 5 unhealthy"} {
			if !strings.Contains(text, want) {
				t.Errorf("doctor's report lacks %q:\n%s", want, text)
			}
		}
	})
}

// stackRoutes returns the test stack's routing table, to change.
func stackRoutes(t *testing.T) map[string]any {
	t.Helper()
	var routes map[string]any
	data, err := os.ReadFile(stack.routes)
	if err == nil {
		err = json.Unmarshal(data, &routes)
	}
	if err != nil {
		t.Fatal(err)
	}
	return routes
}

// writeRoutes writes routes to a file of the test's and returns its name.
func writeRoutes(t *testing.T, routes map[string]any) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "routes.json")
	b, err := json.Marshal(routes)
	if err == nil {
		err = os.WriteFile(file, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	return file
}

// expiringPeer returns a copy of the https endpoint peer whose CA bundle
// also holds a certificate for cn that expires in 10 days, and the
// bundle's secret reference.
func expiringPeer(t *testing.T, peer map[string]any, cn string) (map[string]any, string) {
	t.Helper()
	cert, _ := certAndKey(t, cn, time.Now().Add(10*24*time.Hour))
	ca, err := os.ReadFile(os.Getenv("FERRY_TEST_HTTPS_CA"))
	if err != nil {
		t.Fatal(err)
	}
	bundle := secret(t, cn+"-ca", string(ca)+cert)
	out := map[string]any{}
	for k, v := range peer {
		out[k] = v
	}
	out["caBundle"] = bundle
	return out, bundle
}

// secret stores value as a new secret in the emulator, tagged with
// tags (key, value pairs), and returns its reference; it goes when the
// test ends.
func secret(t *testing.T, name, value string, tags ...string) string {
	t.Helper()
	sm := secretsmanager.NewFromConfig(stack.awsCfg)
	id := "ferry/local/transports/test/" + uniq(name)
	in := &secretsmanager.CreateSecretInput{Name: &id, SecretString: &value}
	for i := 0; i+1 < len(tags); i += 2 {
		in.Tags = append(in.Tags, smtypes.Tag{Key: &tags[i], Value: &tags[i+1]})
	}
	if _, err := sm.CreateSecret(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = sm.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: &id, ForceDeleteWithoutRecovery: aws.Bool(true)})
	})
	return "secret:" + id
}

// ed25519Key returns a new OpenSSH private key: one the SFTP server does
// not know.
func ed25519Key(t *testing.T) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(b)
}

// certAndKey returns a self-signed certificate for cn valid until notAfter
// and its key, PEM-encoded.
func certAndKey(t *testing.T, cn string, notAfter time.Time) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notAfter.Add(-30 * 24 * time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}))
}

// TestHealthSchedule runs the scheduled health function's handler, as the
// Lambda would, against the emulator's table and bus and the real peers:
// a partner that goes down and comes back is announced once each way, a
// certificate 10 days from expiry gets its 14-day notice once, and a
// mailbox whose password is refused is left alone after three refusals.
func TestHealthSchedule(t *testing.T) {
	ctx := context.Background()
	bucket := uniq("ferry-health")
	routes := stackRoutes(t)
	endpoint := uniq("soon")
	soon, _ := expiringPeer(t, routes["https"].(map[string]any)["peer"].(map[string]any), "health-soon")
	routes["https"] = map[string]any{endpoint: soon}
	mesh := routes["mesh"].(map[string]any)
	var wrong []any
	for _, mb := range mesh["mailboxes"].([]any) {
		if mb.(map[string]any)["id"] == "X26ABC2" {
			wrong = append(wrong, mb)
		}
	}
	mesh["mailboxes"] = wrong
	delete(mesh, "inbound")
	routes["routes"] = []any{
		map[string]any{"name": "to-new-bucket", "match": map[string]any{"prefix": "outbound/health/"}, "destination": map[string]any{"type": "s3", "bucket": bucket}},
		map[string]any{"name": "to-soon", "match": map[string]any{"prefix": "outbound/soon/"}, "destination": map[string]any{"type": "https", "endpoint": endpoint}},
		map[string]any{"name": "to-mesh", "match": map[string]any{"prefix": "outbound/mesh/"}, "destination": map[string]any{"type": "mesh"}},
	}
	cfg := app.Config{Routes: writeRoutes(t, routes), Handler: "health", Table: stack.res.Table, EventBus: stack.res.EventBus,
		EventSource: stack.res.EventSource, RetryQueueURL: stack.queueURL(t, stack.res.RetryQueue), S3PathStyle: true}
	a, err := app.New(ctx, stack.awsCfg, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	s3p, httpsP, meshP := "s3 "+bucket, "https "+endpoint, "mesh X26ABC2"
	// X26ABC2 is in the stack's own table too, which ferry local checks
	// on its schedule, sharing its state: its events are not counted here.
	queue := subscribe(t, map[string]any{"source": []string{"ferry"}, "detail": map[string]any{"partner": []string{s3p, httpsP}}})

	run := func(step string, want ...string) {
		t.Helper()
		if err := a.Health.Handle(ctx); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		got := partnerEvents(t, queue, len(want))
		sort.Strings(want)
		if strings.Join(got, "; ") != strings.Join(want, "; ") {
			t.Fatalf("%s: events %q, want %q", step, got, want)
		}
	}
	run("first check", "Partner Unhealthy "+s3p, "Credential Expiring "+httpsP+" 14")
	if _, err := stack.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &bucket}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = stack.s3.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: &bucket}) })
	run("the bucket now exists", "Partner Healthy "+s3p)
	run("nothing changed")

	var st store.PartnerHealth
	for i := 0; i < health.AuthBackoffAfter; i++ {
		var ok bool
		if st, ok, err = stack.store.PartnerHealth(ctx, meshP); err != nil || !ok {
			t.Fatalf("state of %s: %v %v", meshP, ok, err)
		}
		if st.AuthFailures >= health.AuthBackoffAfter {
			break
		}
		if err := a.Health.Handle(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if st.Healthy || st.AuthFailures < health.AuthBackoffAfter || st.Kind != "unauthorized" {
		t.Fatalf("state of %s after its password was refused %d times: %+v", meshP, health.AuthBackoffAfter, st)
	}
	run("backing off")
	if now, _, _ := stack.store.PartnerHealth(ctx, meshP); !now.Checked.Equal(st.Checked) || now.AuthFailures != st.AuthFailures {
		t.Fatalf("%s was logged in to again while backing off: %+v, before %+v", meshP, now, st)
	}
}

// partnerEvents returns the "detail-type partner [notice]" of the events
// on queue, waiting for want of them and then a little for any more,
// in the order published.
func partnerEvents(t *testing.T, url string, want int) []string {
	t.Helper()
	var got []string
	deadline := time.Now().Add(20 * time.Second)
	quiet := time.Time{}
	for time.Now().Before(deadline) && (quiet.IsZero() || time.Now().Before(quiet)) {
		out, err := stack.sqs.ReceiveMessage(context.Background(), &sqs.ReceiveMessageInput{QueueUrl: &url, MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			var ev struct {
				DetailType string `json:"detail-type"`
				Detail     struct {
					Partner string `json:"partner"`
					Notice  int    `json:"notice"`
				} `json:"detail"`
			}
			if err := json.Unmarshal([]byte(aws.ToString(m.Body)), &ev); err != nil {
				t.Fatalf("not an EventBridge event: %s", aws.ToString(m.Body))
			}
			s := ev.DetailType + " " + ev.Detail.Partner
			if ev.Detail.Notice > 0 {
				s += fmt.Sprintf(" %d", ev.Detail.Notice)
			}
			got = append(got, s)
			_, _ = stack.sqs.DeleteMessage(context.Background(), &sqs.DeleteMessageInput{QueueUrl: &url, ReceiptHandle: m.ReceiptHandle})
		}
		if len(got) >= want && quiet.IsZero() {
			quiet = time.Now().Add(2 * time.Second)
		}
	}
	sort.Strings(got)
	return got
}
