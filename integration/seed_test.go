//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/transport/mesh"
)

// The two examples below are NHS England's terraform-aws-mesh-client
// README's own ("Example Send File" and the new-message Lambda of "Receive
// File"), run with boto3 against ferry's MESH bucket. Changes from the
// README: the bucket name and mailbox ids; the send puts a Body (the README's
// put_object has none); the receive iterates metadata.items() (the README's
// `for k, v in new_message.metadata` cannot run) and prints what
// on_new_message would get instead of raising NotImplementedError.

const seedSendExample = `
import sys, json
from urllib.parse import quote_plus
from uuid import uuid4

import boto3

sender = "X26ABC1"
recipient = "X26ABC2"
my_id = uuid4().hex
bucket = "ferry-local-mesh"  # mesh outbound bucket
key = f"outbound/{sender}/{my_id}.json"
metadata = {
  "mex-From": sender,
  "mex-To": recipient,
  "mex-WorkflowId": "PATHOLOGY_RESULT",
  "mex-Subject": "my super subject $£% etc",
  "mex-LocalId": my_id,
}
metadata = {k: quote_plus(v) for k, v in metadata.items()}  # don't forget to escape metadata values

boto3.client("s3").put_object(
  Bucket=bucket, Key=key, ContentType="application/json", Metadata=metadata, Body=sys.stdin.buffer.read()
)
print(json.dumps({"key": key, "local_id": my_id}))
`

const seedReceiveExample = `
import json, sys
import logging
from typing import Any
from urllib.parse import unquote_plus

import boto3

s3 = boto3.resource("s3")

def on_new_message(_sender: str, _workflow_id: str, _payload: dict[str, Any], metadata):
    print(json.dumps({"sender": _sender, "workflow_id": _workflow_id, "payload": _payload, "metadata": metadata}))


def handler(event: dict[str, Any], _context=None):
    s3_bucket = event["detail"]["requestParameters"]["bucketName"]
    s3_key = event["detail"]["requestParameters"]["key"]

    new_message = s3.Object(bucket_name=s3_bucket, key=s3_key)

    mesh_metadata = {
        k.lower(): unquote_plus(v)
        for k, v in new_message.metadata.items()
        if k.lower().startswith("mex-")
    }

    message_id = mesh_metadata["mex-messageid"]
    sender = mesh_metadata["mex-from"]
    recipient = mesh_metadata["mex-from"]
    workflow_id = mesh_metadata.get("mex-workflowid")
    message_type = mesh_metadata.get("mex-messagetype")

    logging.info(f"new mesh message: message_id={message_id} sender={sender} recipient={recipient} workflow_id={workflow_id} message_type={message_type}")

    if message_type == "REPORT":
        return

    response = new_message.get()
    payload = json.loads(response["Body"].read())
    on_new_message(sender, workflow_id, payload, mesh_metadata)

handler(json.loads(sys.argv[1]))
`

// boto3 runs a Python script with boto3 (from the local stack's venv)
// pointed at the emulator, as a user's own code would be, and returns its
// stdout.
func boto3(t *testing.T, script string, stdin []byte, args ...string) string {
	t.Helper()
	root := os.Getenv("FERRY_ROOT")
	if root == "" {
		t.Fatal("FERRY_ROOT must be set: run `make test-integration`")
	}
	// The emulator is addressed by IP, so buckets go in the path; a config
	// file says so, leaving the user's code unchanged.
	conf := filepath.Join(t.TempDir(), "aws-config")
	if err := os.WriteFile(conf, []byte("[default]\ns3 =\n    addressing_style = path\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, ".cache/venv/bin/python"), append([]string{"-c", script}, args...)...)
	cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL="+stack.endpoint, "AWS_CONFIG_FILE="+conf,
		"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=us-east-1", "PYTHONWARNINGS=ignore")
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("boto3 script: %v\n%s", err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

func TestSeedReadmeSendExample(t *testing.T) {
	payload := []byte(`{"results": [{"patient": "9990001112", "test": "HbA1c", "value": 48}]}`)
	var sent struct {
		Key     string `json:"key"`
		LocalID string `json:"local_id"`
	}
	if err := json.Unmarshal([]byte(boto3(t, seedSendExample, payload)), &sent); err != nil {
		t.Fatal(err)
	}
	head, err := stack.s3.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(stack.res.MESHBucket), Key: &sent.Key})
	if err != nil {
		t.Fatal(err)
	}
	id := domain.ObjectTransferID(stack.res.MESHBucket, sent.Key, aws.ToString(head.VersionId), aws.ToString(head.ETag), aws.ToTime(head.LastModified))
	st := stack.waitFor(t, id, 60*time.Second, "delivered", isDone)
	if st.Status == domain.StatusFailed {
		t.Fatalf("transfer failed: %+v\n%s", st.LastFailure, stack.timeline(id))
	}
	if st.Request.Destination.Type != "mesh" || st.Request.Sender != mbFerry || st.Request.Recipient != mbPeer {
		t.Fatalf("routed to %q from %q to %q; want MESH from %s to %s", st.Request.Destination.Type, st.Request.Sender, st.Request.Recipient, mbFerry, mbPeer)
	}
	sum := sha256.Sum256(payload)
	got := peerReceive(t, st.Ref)
	want := received{SHA256: hex.EncodeToString(sum[:]), Sender: mbFerry, WorkflowID: "PATHOLOGY_RESULT",
		Subject: "my super subject $£% etc", LocalID: sent.LocalID, Filename: strings.TrimPrefix(sent.Key, "outbound/"+mbFerry+"/")}
	if got != want {
		t.Fatalf("mesh-client received %+v, want %+v", got, want)
	}
	stack.waitFor(t, id, 30*time.Second, "acknowledged", func(st domain.State) bool { return st.Status == domain.StatusAcknowledged })
}

func TestSeedReadmeReceiveExample(t *testing.T) {
	payload := []byte(`{"report": "lab results", "count": 3}`)
	local := uniq("seed-recv")
	msgID := meshClient(t, mbPeer, fmt.Sprintf(`
print(client.send_message(%q, sys.stdin.buffer.read(), workflow_id=%q, subject="results £5 café", local_id=%q,
    filename="results.json"))
`, mbInbox, wfToUs, local), payload)

	id := mesh.TransferID(mbInbox, msgID)
	st := stack.waitFor(t, id, 60*time.Second, "acknowledged", func(st domain.State) bool {
		return st.Status == domain.StatusAcknowledged || st.Status == domain.StatusFailed
	})
	if st.Status != domain.StatusAcknowledged {
		t.Fatalf("transfer %s: %+v\n%s", st.Status, st.LastFailure, stack.timeline(id))
	}
	key := "inbound/" + mbInbox + "/" + msgID + ".dat"
	event, _ := json.Marshal(map[string]any{"detail": map[string]any{"requestParameters": map[string]string{
		"bucketName": stack.res.MESHBucket, "key": key,
	}}})
	var got struct {
		Sender     string            `json:"sender"`
		WorkflowID string            `json:"workflow_id"`
		Payload    map[string]any    `json:"payload"`
		Metadata   map[string]string `json:"metadata"`
	}
	out := boto3(t, seedReceiveExample, nil, string(event))
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("receive example printed %q: %v", out, err)
	}
	if got.Sender != mbPeer || got.WorkflowID != wfToUs || got.Payload["report"] != "lab results" {
		t.Errorf("on_new_message got sender %q, workflow %q, payload %v", got.Sender, got.WorkflowID, got.Payload)
	}
	for k, want := range map[string]string{
		"mex-messageid": msgID, "mex-to": mbInbox, "mex-subject": "results £5 café", "mex-localid": local,
		"mex-filename": "results.json", "mex-messagetype": "DATA",
	} {
		if got.Metadata[k] != want {
			t.Errorf("metadata %s = %q, want %q", k, got.Metadata[k], want)
		}
	}
}

func TestUploadsOfOneKeyInQuickSuccession(t *testing.T) {
	// The emulator's notifications carry no version id (as an unversioned
	// bucket's do in AWS): each must still become its own transfer, of its
	// own bytes.
	ctx := context.Background()
	sender := uniq("twice")
	key := "outbound/" + sender + "/daily.csv"
	type upload struct {
		id, name string
		body     []byte
	}
	var ups []upload
	for i, name := range []string{"first.csv", "second.csv"} {
		body := []byte(strings.Repeat(fmt.Sprintf("row %d of upload %d\n", i, i), 1000+i))
		put, err := stack.s3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(stack.res.UploadBucket), Key: &key, Body: bytes.NewReader(body),
			Metadata: map[string]string{"sender": sender, "recipient": "partner-a", "filename": name},
		})
		if err != nil {
			t.Fatal(err)
		}
		head, err := stack.s3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(stack.res.UploadBucket), Key: &key, VersionId: put.VersionId})
		if err != nil {
			t.Fatal(err)
		}
		id := domain.ObjectTransferID(stack.res.UploadBucket, key, aws.ToString(head.VersionId), aws.ToString(head.ETag), aws.ToTime(head.LastModified))
		ups = append(ups, upload{id: id, name: name, body: body})
	}
	if ups[0].id == ups[1].id {
		t.Fatalf("both uploads have transfer id %s", ups[0].id)
	}
	for _, u := range ups {
		st := stack.waitFor(t, u.id, 60*time.Second, "delivered", isDone)
		if st.Status != domain.StatusDelivered {
			t.Fatalf("transfer %s of %s: %s %+v\n%s", u.id, u.name, st.Status, st.LastFailure, stack.timeline(u.id))
		}
		sum := sha256.Sum256(u.body)
		if got := stack.objectSHA256(t, "ferry-local-delivered", "partner-a/"+u.name); got != hex.EncodeToString(sum[:]) {
			t.Errorf("partner-a/%s sha256 %s, want its own upload's %x", u.name, got, sum)
		}
	}
}
