package domain

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// payloadCases has every payload type, fully populated, with the JSON it is
// stored as. The JSON is a contract: stored events and readers in the wild
// depend on these names, so a change here must be deliberate.
var payloadCases = []struct {
	payload Payload
	json    string
}{
	{
		Requested{
			Source:      Source{Kind: "s3", Bucket: "inbound", Key: "outbound/X26/a.csv", VersionID: "3HL4kqtJlcpXroDTDmJ", ETag: "\"9b2cf535f27731c974343645a3985328\""},
			Route:       "mesh-x26",
			Destination: Destination{Type: "s3", Bucket: "out", Prefix: "delivered/"},
			Sender:      "X26ABC1",
			Recipient:   "X26ABC2",
			Workflow:    "TEST_WORKFLOW",
			Filename:    "a.csv",
			Size:        52428800,
			SHA256:      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			ChunkSize:   20971520,
			Chunks:      3,
			Retry:       RetryPolicy{MaxAttempts: 5, BaseDelay: Duration(30 * time.Second), MaxDelay: Duration(10 * time.Minute)},
			ExpectAck:   true,
			Metadata:    map[string]string{"subject": "monthly", "localid": "L-1"},
		},
		`{"v":1,"source":{"kind":"s3","bucket":"inbound","key":"outbound/X26/a.csv","versionId":"3HL4kqtJlcpXroDTDmJ","etag":"\"9b2cf535f27731c974343645a3985328\""},` +
			`"route":"mesh-x26","destination":{"type":"s3","bucket":"out","prefix":"delivered/"},"sender":"X26ABC1","recipient":"X26ABC2","workflow":"TEST_WORKFLOW",` +
			`"filename":"a.csv","size":52428800,"sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","chunkSize":20971520,"chunks":3,` +
			`"retry":{"maxAttempts":5,"baseDelay":"30s","maxDelay":"10m0s"},"expectAck":true,"metadata":{"localid":"L-1","subject":"monthly"}}`,
	},
	{
		// A MESH message, delivered in the chunks its sender chose, then
		// acknowledged in the inbox it came from.
		Requested{
			Source:      Source{Kind: "mesh", Mailbox: "X26OT001", MessageID: "20250301085900000000_IN0001"},
			Route:       "mesh-in",
			Destination: Destination{Type: "mesh"},
			Sender:      "X26ABC2",
			Recipient:   "X26OT001",
			Workflow:    "TEST_WORKFLOW",
			Filename:    "m.dat",
			Size:        1234,
			ChunkSize:   0,
			Chunks:      4,
			ExpectAck:   true,
			AckSource:   true,
			Compress:    true,
		},
		`{"v":1,"source":{"kind":"mesh","mailbox":"X26OT001","messageId":"20250301085900000000_IN0001"},` +
			`"route":"mesh-in","destination":{"type":"mesh"},"sender":"X26ABC2","recipient":"X26OT001","workflow":"TEST_WORKFLOW",` +
			`"filename":"m.dat","size":1234,"chunkSize":0,"chunks":4,"expectAck":true,"ackSource":true,"compress":true}`,
	},
	{Started{Ref: "2~upload-id"}, `{"v":1,"ref":"2~upload-id"}`},
	{ChunkSent{Index: 2, Bytes: 20971520, Ref: "etag-2"}, `{"v":1,"index":2,"bytes":20971520,"ref":"etag-2"}`},
	{ChunkSent{Index: 3, Bytes: 1048576, Held: true}, `{"v":1,"index":3,"bytes":1048576,"held":true}`},
	{Delivered{Ref: "msg-1", Location: "s3://out/delivered/a.csv"}, `{"v":1,"ref":"msg-1","location":"s3://out/delivered/a.csv"}`},
	{
		Failed{Kind: KindUnavailable, Code: "503", Message: "peer down", Retryable: true, Attempt: 2, NextAttemptAt: time.Date(2025, 3, 1, 9, 0, 20, 0, time.UTC)},
		`{"v":1,"kind":"unavailable","code":"503","message":"peer down","retryable":true,"attempt":2,"nextAttemptAt":"2025-03-01T09:00:20Z"}`,
	},
	{Retried{Attempt: 3}, `{"v":1,"attempt":3}`},
	{Acknowledged{By: "X26ABC2", Ref: "ack-1"}, `{"v":1,"by":"X26ABC2","ref":"ack-1"}`},
	{Replayed{Actor: "ops@example.org", Reason: "key rotated"}, `{"v":1,"actor":"ops@example.org","reason":"key rotated"}`},
	{Cancelled{Actor: "ops@example.org", Reason: "sender asked"}, `{"v":1,"actor":"ops@example.org","reason":"sender asked"}`},
}

// eventTypesAll is every event type the domain defines.
var eventTypesAll = []EventType{TypeRequested, TypeStarted, TypeChunkSent, TypeDelivered, TypeFailed, TypeRetried, TypeAcknowledged, TypeReplayed, TypeCancelled}

func TestPayloadRoundTrip(t *testing.T) {
	covered := map[EventType]bool{}
	for _, tc := range payloadCases {
		typ := tc.payload.EventType()
		covered[typ] = true
		t.Run(string(typ), func(t *testing.T) {
			data, err := MarshalPayload(tc.payload)
			if err != nil {
				t.Fatal(err)
			}
			if string(data) != tc.json {
				t.Errorf("MarshalPayload =\n%s\nwant\n%s", data, tc.json)
			}
			got, err := UnmarshalPayload(typ, data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.payload) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, tc.payload)
			}
		})
		t.Run(string(typ)+"/zero value", func(t *testing.T) {
			zero := reflect.Zero(reflect.TypeOf(tc.payload)).Interface().(Payload)
			data, err := MarshalPayload(zero)
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(data) || !strings.HasPrefix(string(data), `{"v":1`) {
				t.Fatalf("MarshalPayload(zero) = %s", data)
			}
			got, err := UnmarshalPayload(typ, data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, zero) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, zero)
			}
		})
	}
	for _, typ := range eventTypesAll {
		if !covered[typ] {
			t.Errorf("no round-trip case for %s", typ)
		}
	}
}

// TestPayloadEventType checks that every payload names the type that
// UnmarshalPayload decodes it as.
func TestPayloadEventType(t *testing.T) {
	want := map[EventType]Payload{
		TypeRequested: Requested{}, TypeStarted: Started{}, TypeChunkSent: ChunkSent{}, TypeDelivered: Delivered{},
		TypeFailed: Failed{}, TypeRetried: Retried{}, TypeAcknowledged: Acknowledged{}, TypeReplayed: Replayed{}, TypeCancelled: Cancelled{},
	}
	for typ, p := range want {
		if p.EventType() != typ {
			t.Errorf("%T.EventType() = %s, want %s", p, p.EventType(), typ)
		}
		got, err := UnmarshalPayload(typ, []byte(`{"v":1}`))
		if err != nil {
			t.Fatalf("%s: %v", typ, err)
		}
		if reflect.TypeOf(got) != reflect.TypeOf(p) {
			t.Errorf("UnmarshalPayload(%s) is a %T, want %T", typ, got, p)
		}
	}
	if e := (Event{Payload: Retried{}}); e.Type() != TypeRetried {
		t.Errorf("Event.Type() = %s, want Retried", e.Type())
	}
}

// TestPayloadOlderVersion: a version-1 payload written before optional fields
// existed still decodes, the missing fields left zero; fields unknown to this
// reader are ignored.
func TestPayloadOlderVersion(t *testing.T) {
	for _, tc := range []struct {
		typ  EventType
		data string
		want Payload
	}{
		{
			TypeRequested,
			`{"v":1,"source":{"kind":"s3","bucket":"b","key":"k"},"destination":{"type":"null"},"size":5,"chunkSize":5,"chunks":1}`,
			Requested{Source: Source{Kind: "s3", Bucket: "b", Key: "k"}, Destination: Destination{Type: "null"}, Size: 5, ChunkSize: 5, Chunks: 1},
		},
		{TypeFailed, `{"v":1,"kind":"invalid","message":"bad","retryable":false,"attempt":1}`, Failed{Kind: KindInvalid, Message: "bad", Attempt: 1}},
		{TypeChunkSent, `{"v":1,"index":1,"bytes":0}`, ChunkSent{Index: 1}},
		{TypeChunkSent, `{"v":1,"index":2,"bytes":9,"ref":"etag-2"}`, ChunkSent{Index: 2, Bytes: 9, Ref: "etag-2"}}, // before Held: stored
		{TypeDelivered, `{"v":1,"location":"null://x"}`, Delivered{Location: "null://x"}},
		{TypeStarted, `{"v":1}`, Started{}},
		{TypeRetried, `{"v":1,"attempt":2,"reason":"a field from the future"}`, Retried{Attempt: 2}},
		{TypeCancelled, `{"v":1,"actor":"ops","by":{"nested":true}}`, Cancelled{Actor: "ops"}},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			got, err := UnmarshalPayload(tc.typ, []byte(tc.data))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v\nwant %#v", got, tc.want)
			}
		})
	}
}

func TestUnmarshalPayloadInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  EventType
		data string
	}{
		{"unknown type", "Teleported", `{"v":1}`},
		{"empty type", "", `{"v":1}`},
		{"no version", TypeStarted, `{"ref":"x"}`},
		{"version 0", TypeStarted, `{"v":0,"ref":"x"}`},
		{"negative version", TypeStarted, `{"v":-1}`},
		{"future version", TypeStarted, `{"v":2,"ref":"x"}`},
		{"fractional version", TypeStarted, `{"v":1.5}`},
		{"string version", TypeStarted, `{"v":"1"}`},
		{"not JSON", TypeStarted, `{"v":1,`},
		{"empty", TypeStarted, ``},
		{"null", TypeStarted, `null`},
		{"array", TypeStarted, `[1]`},
		{"wrong field type", TypeChunkSent, `{"v":1,"index":"two"}`},
		{"wrong nested type", TypeRequested, `{"v":1,"source":"s3://b/k"}`},
		{"bad duration", TypeRequested, `{"v":1,"retry":{"baseDelay":"soon"}}`},
		{"bad time", TypeFailed, `{"v":1,"nextAttemptAt":"tomorrow"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := UnmarshalPayload(tc.typ, []byte(tc.data))
			if err == nil {
				t.Fatalf("decoded %#v, want an error", p)
			}
			if KindOf(err) != KindInvalid {
				t.Errorf("error %v has kind %s, want invalid", err, KindOf(err))
			}
			if p != nil {
				t.Errorf("payload %#v returned with the error", p)
			}
		})
	}
}

// TestMarshalPayloadNotAnObject: a payload that does not encode as a JSON
// object cannot carry a version, so MarshalPayload refuses it rather than
// writing broken JSON.
func TestMarshalPayloadNotAnObject(t *testing.T) {
	for name, p := range map[string]Payload{"nil": nil, "nil pointer": (*Started)(nil)} {
		t.Run(name, func(t *testing.T) {
			data, err := MarshalPayload(p)
			if err == nil {
				t.Fatalf("MarshalPayload = %s, want an error", data)
			}
		})
	}
	t.Run("pointer to a payload", func(t *testing.T) {
		data, err := MarshalPayload(&Started{Ref: "x"})
		if err != nil || string(data) != `{"v":1,"ref":"x"}` {
			t.Errorf("MarshalPayload = %s, %v", data, err)
		}
	})
}

// TestPayloadsRoundTripThroughHistory stores a whole history as a store
// would (type + versioned payload) and folds it back to the same state.
func TestPayloadsRoundTripThroughHistory(t *testing.T) {
	for name, h := range map[string][]Payload{
		"acknowledged": hAcknowledged, "replayed": hReplayed, "retrying": hRetrying, "cancelled": hCancelled,
		"source acknowledged": hSourceAcked, "failed after delivery": hNonDelivered,
	} {
		t.Run(name, func(t *testing.T) {
			events := history(h...)
			back := make([]Event, len(events))
			for i, e := range events {
				data, err := MarshalPayload(e.Payload)
				if err != nil {
					t.Fatal(err)
				}
				p, err := UnmarshalPayload(e.Type(), data)
				if err != nil {
					t.Fatal(err)
				}
				back[i] = Event{TransferID: e.TransferID, Seq: e.Seq, At: e.At, Payload: p}
			}
			if got, want := Fold(State{}, back...), Fold(State{}, events...); !reflect.DeepEqual(got, want) {
				t.Errorf("state from decoded events:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestStateJSON: the state is stored beside every event, so it must survive
// JSON unchanged.
func TestStateJSON(t *testing.T) {
	for name, h := range map[string][]Payload{
		"retrying": hRetrying, "awaiting ack": hAwaitingAck, "new": hNew,
		"source-chunked sending": hMESHSending, "source-chunked holding": hMESHHolding, "acknowledging the source": hAckingSource, "failed after delivery": hNonDelivered,
	} {
		t.Run(name, func(t *testing.T) {
			want := Fold(State{}, history(h...)...)
			data, err := json.Marshal(want)
			if err != nil {
				t.Fatal(err)
			}
			var got State
			if err := json.Unmarshal(data, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("state after JSON:\n got %+v\nwant %+v\n%s", got, want, data)
			}
		})
	}
}
