//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/mesh"
)

// latin1Subject has characters outside ASCII that ISO-8859-1 carries.
const latin1Subject = "£100 for the café, naïve"

// TestMESHLatin1SubjectReadByMESHClient: a subject with £ and é sent by
// ferry reaches NHS England's mesh-client exactly (it reads header values
// as ISO-8859-1).
func TestMESHLatin1SubjectReadByMESHClient(t *testing.T) {
	local := uniq("latin1")
	meta := meshMeta(local, "N")
	meta["mex-subject"] = url.QueryEscape(latin1Subject) // quote_plus of the UTF-8, as the seed's users write it
	id, sum := stack.upload(t, "outbound/mesh/"+local+"/figures.csv", 1000, meta)
	st := stack.waitFor(t, id, 60*time.Second, "delivered", isDone)
	if st.Status == domain.StatusFailed {
		t.Fatalf("transfer failed: %+v\n%s", st.LastFailure, stack.timeline(id))
	}
	got := peerReceive(t, st.Ref)
	want := received{SHA256: sum, Sender: mbFerry, WorkflowID: workflow, Subject: latin1Subject, LocalID: local, Filename: "figures.csv"}
	if got != want {
		t.Fatalf("mesh-client received %+v, want %+v", got, want)
	}
}

// TestMESHLatin1SubjectFromMESHClient: a subject with £ and é sent by
// mesh-client lands in the object's metadata (quote_plus of UTF-8) as the
// same text, and in the transfer's events.
func TestMESHLatin1SubjectFromMESHClient(t *testing.T) {
	local := uniq("latin1-in")
	msgID := strings.TrimSpace(meshClient(t, mbPeer, fmt.Sprintf(`
print(client.send_message(%q, b"some data", workflow_id=%q, subject=%q, local_id=%q, filename="f.csv"))
`, mbInbox, wfToUs, latin1Subject, local), nil))

	id := mesh.TransferID(mbInbox, msgID)
	st := stack.waitFor(t, id, 60*time.Second, "acknowledged", func(st domain.State) bool {
		return st.Status == domain.StatusAcknowledged || st.Status == domain.StatusFailed
	})
	if st.Status != domain.StatusAcknowledged {
		t.Fatalf("transfer %s: %+v\n%s", st.Status, st.LastFailure, stack.timeline(id))
	}
	if got := st.Request.Metadata["mex-subject"]; got != latin1Subject {
		t.Errorf("transfer's mex-subject = %q, want %q", got, latin1Subject)
	}
	key := "inbound/" + mbInbox + "/" + msgID + ".dat"
	head, err := stack.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(stack.res.MESHBucket), Key: &key})
	if err != nil {
		t.Fatal(err)
	}
	raw := head.Metadata["mex-subject"]
	if v, err := url.QueryUnescape(raw); err != nil || v != latin1Subject {
		t.Errorf("object metadata mex-subject = %q (decoded %q, %v), want %q", raw, v, err, latin1Subject)
	}
	if want := url.QueryEscape(latin1Subject); raw != want {
		t.Errorf("object metadata mex-subject = %q, want quote_plus of UTF-8 %q", raw, want)
	}
}

// TestMESHSubjectOutsideLatin1Refused: text ISO-8859-1 cannot carry is
// refused before anything is sent, naming the field.
func TestMESHSubjectOutsideLatin1Refused(t *testing.T) {
	for _, subject := range []string{"€100", "done ✓"} {
		t.Run(subject, func(t *testing.T) {
			local := uniq("not-latin1")
			meta := meshMeta(local, "N")
			meta["mex-subject"] = url.QueryEscape(subject)
			id, _ := stack.upload(t, "outbound/mesh/"+local+"/figures.csv", 1000, meta)
			st := stack.waitFor(t, id, 60*time.Second, "failed", isDone)
			f := st.LastFailure
			if st.Status != domain.StatusFailed || f == nil {
				t.Fatalf("transfer %s, want Failed\n%s", st.Status, stack.timeline(id))
			}
			if f.Retryable || f.Kind != domain.KindInvalid || f.Code != "INVALID_METADATA" || !strings.Contains(f.Message, "mex-subject") {
				t.Fatalf("failure = %+v; want final, invalid, INVALID_METADATA, naming mex-subject", f)
			}
			if st.Ref != "" || st.ChunksSent != 0 {
				t.Fatalf("MESH message %q, %d chunks sent; want nothing sent", st.Ref, st.ChunksSent)
			}
		})
	}
}
