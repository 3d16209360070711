package store

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/oklog/ulid/v2"
	"pgregory.net/rapid"

	"github.com/ferryhq/ferry/domain"
)

func day(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestKeys(t *testing.T) {
	at := day("2024-03-05T07:08:09.5+01:00")
	tests := []struct{ name, got, want string }{
		{"transfer", transferKey("01ABC"), "T#01ABC"},
		{"event", eventKey(42), "E#0000000042"},
		{"event max", eventKey(9999999999), "E#9999999999"},
		{"time is UTC and fixed width", formatTime(at), "2024-03-05T06:08:09.500000000Z"},
		{"status bucket is the UTC day", byStatus.partition("DELIVERED", day("2024-03-06T00:30:00+02:00"), 0), "S#DELIVERED#2024-03-05#00"},
		{"sender bucket is the month", bySender.partition("X26", at, 7), "SND#X26#2024-03#07"},
		{"recipient bucket", byRecipient.partition("Y1", at, 12), "RCP#Y1#2024-03#12"},
		{"route bucket", byRoute.partition("r", at, 3), "RT#r#2024-03#03"},
		{"sort key", sortKey(at, "01ABC"), "2024-03-05T06:08:09.500000000Z#01ABC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestSortKeyOrderIsTimeOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := time.Unix(0, rapid.Int64Range(0, 1<<62).Draw(t, "a"))
		b := time.Unix(0, rapid.Int64Range(0, 1<<62).Draw(t, "b"))
		ka, kb := sortKey(a, "01B"), sortKey(b, "01A")
		if a.Before(b) && ka >= kb {
			t.Fatalf("%v before %v but %q >= %q", a, b, ka, kb)
		}
		// The upper bound of a window ending at b covers every id at b.
		if !a.After(b) && ka > formatTime(b)+"$" {
			t.Fatalf("%q is above the bound of %v", ka, b)
		}
	})
}

func TestBuckets(t *testing.T) {
	fmtAll := func(ix index, ts []time.Time) []string {
		var out []string
		for _, b := range ts {
			out = append(out, b.Format(ix.bucketLayout()))
		}
		return out
	}
	tests := []struct {
		name         string
		ix           index
		since, until string
		want         []string
	}{
		{"same day", byStatus, "2024-03-05T01:00:00Z", "2024-03-05T23:00:00Z", []string{"2024-03-05"}},
		{"24 hours spans two days", byStatus, "2024-03-04T12:00:00Z", "2024-03-05T12:00:00Z", []string{"2024-03-05", "2024-03-04"}},
		{"three days newest first", byStatus, "2024-02-28T00:00:00Z", "2024-03-01T00:00:00Z", []string{"2024-03-01", "2024-02-29", "2024-02-28"}},
		{"days in UTC", byStatus, "2024-03-05T00:30:00+02:00", "2024-03-05T01:30:00+02:00", []string{"2024-03-04"}},
		{"months over a year end", bySender, "2023-11-15T00:00:00Z", "2024-01-02T00:00:00Z", []string{"2024-01", "2023-12", "2023-11"}},
		{"month of the 31st", byRoute, "2024-01-31T00:00:00Z", "2024-03-31T00:00:00Z", []string{"2024-03", "2024-02", "2024-01"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := fmtAll(tt.ix, tt.ix.buckets(day(tt.since), day(tt.until)))
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestPlanQuery(t *testing.T) {
	now := day("2024-03-05T12:00:00Z")
	tests := []struct {
		name       string
		q          Query
		wantIndex  string
		wantFilter string
		wantKind   domain.Kind
	}{
		{name: "no selector", q: Query{}, wantKind: domain.KindInvalid},
		{name: "status", q: Query{Status: domain.StatusFailed}, wantIndex: "byStatus"},
		{name: "sender wins, the rest filter", q: Query{Sender: "a", Recipient: "b", Route: "c", Status: domain.StatusFailed},
			wantIndex: "bySender", wantFilter: "#f0 = :f0 AND #f1 = :f1 AND #f2 = :f2"},
		{name: "recipient with status", q: Query{Recipient: "b", Status: domain.StatusDelivered}, wantIndex: "byRecipient", wantFilter: "#f0 = :f0"},
		{name: "route", q: Query{Route: "c"}, wantIndex: "byRoute"},
		{name: "workflow filters any index", q: Query{Status: domain.StatusFailed, Workflow: "w"}, wantIndex: "byStatus", wantFilter: "#f0 = :f0"},
		{name: "inverted window", q: Query{Status: domain.StatusFailed, Since: now, Until: now.Add(-time.Hour)}, wantKind: domain.KindInvalid},
		{name: "too many days", q: Query{Status: domain.StatusFailed, Since: now.AddDate(-2, 0, 0)}, wantKind: domain.KindInvalid},
		{name: "two years of months are fine", q: Query{Sender: "a", Since: now.AddDate(-2, 0, 0)}, wantIndex: "bySender"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := planQuery(tt.q, now)
			if tt.wantKind != "" {
				if got := domain.KindOf(err); err == nil || got != tt.wantKind {
					t.Fatalf("err = %v (kind %s), want kind %s", err, got, tt.wantKind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.ix.name != tt.wantIndex || p.filter != tt.wantFilter {
				t.Errorf("got index %s filter %q, want %s %q", p.ix.name, p.filter, tt.wantIndex, tt.wantFilter)
			}
		})
	}
	t.Run("default window is the 24 hours before now", func(t *testing.T) {
		p, err := planQuery(Query{Status: domain.StatusFailed}, now)
		if err != nil {
			t.Fatal(err)
		}
		if !p.until.Equal(now) || !p.since.Equal(now.Add(-24*time.Hour)) {
			t.Errorf("got %v..%v", p.since, p.until)
		}
	})
}

func TestCursor(t *testing.T) {
	t.Run("round trip", func(t *testing.T) {
		c := cursor{Index: "byStatus", Filter: "ab12", Since: 1, Until: 2e18, Bucket: 3, Shards: make([]shardPos, historyShards)}
		c.Shards[0] = shardPos{Done: true}
		c.Shards[5] = shardPos{Key: map[string]string{"pk": "T#x", "sk": "VIEW", "s_pk": "S#FAILED#2024-01-01#05", "s_sk": "t#x"}}
		s := encodeCursor(c)
		if strings.ContainsAny(s, "+/=") {
			t.Errorf("cursor %q is not unpadded base64url", s)
		}
		got, err := decodeCursor(s)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("got %+v, want %+v", got, c)
		}
	})
	for _, bad := range []string{"!!", "bm90IGpzb24", encodeCursor(cursor{Index: "nope"}), encodeCursor(cursor{Index: "byStatus", Bucket: -1}), encodeCursor(cursor{Index: "byStatus", Shards: make([]shardPos, 3)})} {
		t.Run("malformed "+bad, func(t *testing.T) {
			if _, err := decodeCursor(bad); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("err = %v, want kind invalid", err)
			}
		})
	}
	t.Run("keys convert both ways", func(t *testing.T) {
		key := map[string]types.AttributeValue{"pk": str("T#x"), "sk": str("VIEW")}
		if got := keyValues(keyStrings(key)); !reflect.DeepEqual(got, key) {
			t.Errorf("got %v, want %v", got, key)
		}
		if keyValues(nil) != nil || keyStrings(nil) != nil {
			t.Error("empty key did not stay nil")
		}
	})
}

func testState(t *testing.T) (domain.State, []domain.Event) {
	t.Helper()
	at := day("2024-03-05T07:08:09.123456789Z")
	evs := []domain.Event{
		{TransferID: "01HX", Seq: 1, At: at, Payload: domain.Requested{
			Source: domain.Source{Kind: "s3", Bucket: "in", Key: "outbound/a.csv"}, Route: "r1",
			Destination: domain.Destination{Type: "null"}, Sender: "S1", Recipient: "R1", Filename: "a.csv",
			Size: 10, ChunkSize: 4, Chunks: 3, Metadata: map[string]string{"subject": "hi"},
		}},
		{TransferID: "01HX", Seq: 2, At: at.Add(time.Second), Payload: domain.Failed{
			Kind: domain.KindUnavailable, Message: "peer down", Retryable: true, Attempt: 1, NextAttemptAt: at.Add(time.Minute),
		}},
	}
	return domain.Fold(domain.State{}, evs...), evs
}

// image converts a DynamoDB item to a stream image, as the Streams API and
// StreamImage would deliver it.
func image(t *testing.T, item map[string]types.AttributeValue) map[string]events.DynamoDBAttributeValue {
	t.Helper()
	img, err := itemImage(item)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestDecodeImage(t *testing.T) {
	st, evs := testState(t)
	before := domain.Fold(domain.State{}, evs[0])
	t.Run("round trip", func(t *testing.T) {
		item, err := eventItem(evs[1], st, "w1")
		if err != nil {
			t.Fatal(err)
		}
		img := image(t, item)
		if !IsEventImage(img) {
			t.Fatal("IsEventImage = false")
		}
		e, got, err := DecodeImage(img)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(e, evs[1]) {
			t.Errorf("event: got %+v, want %+v", e, evs[1])
		}
		if !reflect.DeepEqual(got, st) {
			t.Errorf("state: got %+v, want %+v", got, st)
		}
		if reflect.DeepEqual(got, before) {
			t.Error("the snapshot is the state before the event")
		}
	})
	t.Run("view item is not an event", func(t *testing.T) {
		img := image(t, viewItem(st))
		if IsEventImage(img) {
			t.Error("IsEventImage = true")
		}
		if _, _, err := DecodeImage(img); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("err = %v, want kind invalid", err)
		}
	})
	t.Run("empty image", func(t *testing.T) {
		if _, _, err := DecodeImage(nil); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("err = %v, want kind invalid", err)
		}
	})
	t.Run("unknown event type", func(t *testing.T) {
		item, _ := eventItem(evs[0], before, "")
		item[attrType] = str("Teleported")
		if _, _, err := DecodeImage(image(t, item)); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("err = %v, want kind invalid", err)
		}
	})
}

func TestStreamImage(t *testing.T) {
	in := map[string]streamtypes.AttributeValue{
		"s":    &streamtypes.AttributeValueMemberS{Value: "x"},
		"n":    &streamtypes.AttributeValueMemberN{Value: "12"},
		"b":    &streamtypes.AttributeValueMemberB{Value: []byte{1, 2}},
		"bool": &streamtypes.AttributeValueMemberBOOL{Value: true},
		"null": &streamtypes.AttributeValueMemberNULL{Value: true},
		"ss":   &streamtypes.AttributeValueMemberSS{Value: []string{"a", "b"}},
		"ns":   &streamtypes.AttributeValueMemberNS{Value: []string{"1"}},
		"bs":   &streamtypes.AttributeValueMemberBS{Value: [][]byte{{3}}},
		"l": &streamtypes.AttributeValueMemberL{Value: []streamtypes.AttributeValue{
			&streamtypes.AttributeValueMemberS{Value: "y"},
		}},
		"m": &streamtypes.AttributeValueMemberM{Value: map[string]streamtypes.AttributeValue{
			"k": &streamtypes.AttributeValueMemberN{Value: "3"},
		}},
	}
	got, err := json.Marshal(StreamImage(in))
	if err != nil {
		t.Fatal(err)
	}
	var gotv, wantv any
	want := `{"s":{"S":"x"},"n":{"N":"12"},"b":{"B":"AQI="},"bool":{"BOOL":true},"null":{"NULL":true},
		"ss":{"SS":["a","b"]},"ns":{"NS":["1"]},"bs":{"BS":["Aw=="]},"l":{"L":[{"S":"y"}]},"m":{"M":{"k":{"N":"3"}}}}`
	_ = json.Unmarshal(got, &gotv)
	_ = json.Unmarshal([]byte(want), &wantv)
	if !reflect.DeepEqual(gotv, wantv) {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestViewItem(t *testing.T) {
	st, _ := testState(t)
	item := viewItem(st)
	var keys []string
	for k := range item {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for k, want := range map[string]string{
		"pk": "T#01HX", "sk": "VIEW",
		// The shard is the id's FNV-1a hash, mod 16: pinned, as a stored
		// table depends on it.
		"s_pk":   "S#RETRYING#2024-03-05#10",
		"s_sk":   "2024-03-05T07:08:10.123456789Z#01HX",
		"snd_pk": "SND#S1#2024-03#10", "snd_sk": "2024-03-05T07:08:09.123456789Z#01HX",
		"rcp_pk": "RCP#R1#2024-03#10", "rt_pk": "RT#r1#2024-03#10",
		"lastError": "peer down",
	} {
		if got := recordOf(item)[k]; got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := item[attrWorkflow]; ok {
		t.Errorf("empty workflow stored; keys %v", keys)
	}
	got, err := summaryOf(item)
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{ID: "01HX", Seq: 2, Status: domain.StatusRetrying, Route: "r1", Sender: "S1", Recipient: "R1",
		Filename: "a.csv", Size: 10, Chunks: 3, Created: st.Created, Updated: st.Updated, LastError: "peer down"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	t.Run("no sender, no sender key", func(t *testing.T) {
		st := st
		st.Request.Sender = ""
		if _, ok := viewItem(st)[bySender.pk]; ok {
			t.Error("sender key written for an empty sender")
		}
	})
}

func TestCheckAppend(t *testing.T) {
	st, evs := testState(t)
	req := evs[0]
	chunk := domain.Event{TransferID: "01HX", Seq: 3, Payload: domain.Retried{Attempt: 2}}
	tests := []struct {
		name   string
		prev   domain.State
		events []domain.Event
		ok     bool
	}{
		{"first event", domain.State{}, []domain.Event{req}, true},
		{"next event", st, []domain.Event{chunk}, true},
		{"nothing", st, nil, false},
		{"no id", domain.State{}, []domain.Event{{Seq: 1, Payload: req.Payload}}, false},
		{"gap", st, []domain.Event{{TransferID: "01HX", Seq: 4, Payload: domain.Retried{}}}, false},
		{"stale", st, []domain.Event{{TransferID: "01HX", Seq: 2, Payload: domain.Retried{}}}, false},
		{"other transfer", st, []domain.Event{{TransferID: "01HY", Seq: 3, Payload: domain.Retried{}}}, false},
		{"mixed transfers", domain.State{}, []domain.Event{req, {TransferID: "01HY", Seq: 2, Payload: domain.Retried{}}}, false},
		{"no payload", st, []domain.Event{{TransferID: "01HX", Seq: 3}}, false},
		{"first is not Requested", domain.State{}, []domain.Event{{TransferID: "01HX", Seq: 1, Payload: domain.Retried{}}}, false},
		{"too many", domain.State{}, make([]domain.Event, MaxAppend+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkAppend(tt.prev, tt.events)
			if tt.ok && err != nil {
				t.Fatalf("err = %v", err)
			}
			if !tt.ok && domain.KindOf(err) != domain.KindInvalid {
				t.Fatalf("err = %v, want kind invalid", err)
			}
		})
	}
}

func TestWritesOf(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want int64
	}{
		{"put", &dynamodb.PutItemInput{}, 1},
		{"update", &dynamodb.UpdateItemInput{}, 1},
		{"delete", &dynamodb.DeleteItemInput{}, 1},
		{"query", &dynamodb.QueryInput{}, 0},
		{"batch", &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{"a": {{}, {}}, "b": {{}}}}, 3},
		{"transaction", &dynamodb.TransactWriteItemsInput{TransactItems: []types.TransactWriteItem{
			{Put: &types.Put{}}, {Update: &types.Update{}}, {ConditionCheck: &types.ConditionCheck{}},
		}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writesOf(tt.in); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

func TestErrorsHaveKinds(t *testing.T) {
	if domain.KindOf(ErrConflict) != domain.KindConflict || domain.KindOf(ErrNotFound) != domain.KindNotFound {
		t.Error("sentinel kinds are wrong")
	}
	err := wrap("op", &types.ProvisionedThroughputExceededException{Message: aws.String("slow down")})
	if domain.KindOf(err) != domain.KindUnavailable || domain.CodeOf(err) != "ProvisionedThroughputExceededException" {
		t.Errorf("err = %v, want unavailable with code", err)
	}
}

// TestShardsSpread: transfer ids spread over every shard of each history
// index, none taking much more than its share.
func TestShardsSpread(t *testing.T) {
	for _, ix := range []index{byStatus, bySender, byRecipient, byRoute} {
		counts := make([]int, ix.shards)
		const n = 4000
		for range n {
			counts[ix.shardOf(ulid.Make().String())]++
		}
		for shard, c := range counts {
			if share := n / ix.shards; c < share/2 || c > share*3/2 {
				t.Errorf("%s: shard %d has %d of %d ids, want about %d", ix.name, shard, c, n, share)
			}
		}
	}
}
