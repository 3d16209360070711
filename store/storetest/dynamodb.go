package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	streamtypes "github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

// DynamoDBHarness gives RunDynamoDB what it needs of a DynamoDB (an emulator
// or the real service).
type DynamoDBHarness struct {
	// NewStore returns a Store on a new, empty, created table whose client
	// applies opts (the suite adds request-counting and resending middleware
	// with them).
	NewStore func(t *testing.T, opts ...func(*dynamodb.Options)) *store.Store
	// Streams returns a DynamoDB Streams client for the same endpoint.
	Streams func(t *testing.T) *dynamodbstreams.Client
}

// RunDynamoDB runs, as subtests of t, the part of the contract that only
// the DynamoDB store has to keep: what it costs in requests and writes, how
// it survives an SDK resend, its stream images, its read model's View and
// history queries. Run the shared contract (Run) against it as well.
func RunDynamoDB(t *testing.T, h DynamoDBHarness) {
	if h.NewStore == nil || h.Streams == nil {
		t.Fatal("storetest: the DynamoDB harness needs NewStore and Streams")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, DynamoDBHarness)
	}{
		{"load is one request whatever the history length", testLoadOneRequest},
		{"a resent append that had succeeded is not a conflict", testResend},
		{"an older view never overwrites a newer one", testViewOrder},
		{"history by status over days, paged", testHistoryByStatus},
		{"history by sender, recipient and route", testHistoryByParty},
		{"history merges its index shards in order", testHistoryAcrossShards},
		{"stream images decode to the appended events", testStream},
		{"a transfer of N chunks costs N+5 writes", testWriteCount},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, h) })
	}
}

func testLoadOneRequest(t *testing.T, h DynamoDBHarness) {
	ctx := context.Background()
	var c store.WriteCounter
	s := h.NewStore(t, func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, c.Middleware()) })
	const n = 200
	st := started(t, s, n)
	id := st.ID
	for st.Version < n {
		var batch []domain.Event
		next := st
		for len(batch) < store.MaxAppend && next.Version < n {
			evs := chunk(t, next, base.Add(time.Duration(next.Version)*time.Second))
			next = domain.Fold(next, evs...)
			batch = append(batch, evs...)
		}
		st = mustAppend(t, s, st, batch...)
	}

	c.Reset()
	got, err := s.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if q := c.Calls("Query"); q != 1 {
		t.Errorf("load made %d Query calls, want 1", q)
	}
	if c.Calls("GetItem") != 0 || c.Count() != 0 {
		t.Errorf("load made other requests")
	}
	if !reflect.DeepEqual(got, st) || got.Version != n || got.ChunksSent != n-2 {
		t.Errorf("load: got v%d with %d chunks, want v%d with %d", got.Version, got.ChunksSent, n, n-2)
	}

	checkEvents(t, s, id, n)
	page, err := s.Events(ctx, id, 50, 10)
	if err != nil || len(page) != 10 || page[0].Seq != 51 || page[9].Seq != 60 {
		t.Errorf("events 51..60: got %d events, %v", len(page), err)
	}
}

// resend is client middleware that sends every PutItem twice and returns
// the second response, as the SDK does when a response is lost and it retries.
func resend(stack *middleware.Stack) error {
	return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("storetestResend",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			if middleware.GetOperationName(ctx) != "PutItem" {
				return next.HandleFinalize(ctx, in)
			}
			if _, _, err := next.HandleFinalize(ctx, in); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			req, ok := in.Request.(*smithyhttp.Request)
			if !ok {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, fmt.Errorf("unexpected request %T", in.Request)
			}
			if err := req.RewindStream(); err != nil {
				return middleware.FinalizeOutput{}, middleware.Metadata{}, err
			}
			return next.HandleFinalize(ctx, in)
		}), middleware.After)
}

func testResend(t *testing.T, h DynamoDBHarness) {
	ctx := context.Background()
	s := h.NewStore(t, func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, resend) })
	st := started(t, s, 3)
	next, err := s.Append(ctx, st, chunk(t, st, base)...)
	if err != nil {
		t.Fatalf("append: %v", err)
	}
	checkEvents(t, s, st.ID, st.Version+1)
	// A different append of the same version still conflicts.
	if _, err := s.Append(ctx, st, chunk(t, st, base)...); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second append: err = %v, want ErrConflict", err)
	}
	if got, err := s.Load(ctx, st.ID); err != nil || !reflect.DeepEqual(got, next) {
		t.Errorf("load: got %+v, %v, want %+v", got, err, next)
	}
}

func testViewOrder(t *testing.T, h DynamoDBHarness) {
	ctx := context.Background()
	s := h.NewStore(t)
	id := newID()
	s1 := domain.Fold(domain.State{}, request(t, id, 3, base))
	s2 := domain.Fold(s1, decide(t, s1, domain.Start{}, base.Add(time.Second))...)
	s3 := domain.Fold(s2, chunk(t, s2, base.Add(2*time.Second))...)

	steps := []struct {
		st    domain.State
		wrote bool
		seq   int
	}{
		{s1, true, 1},
		{s3, true, 3},
		{s2, false, 3}, // a late record of an older version
		{s3, false, 3}, // a duplicate
		{s1, false, 3},
	}
	for i, step := range steps {
		wrote, err := s.Project(ctx, step.st)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if wrote != step.wrote {
			t.Errorf("step %d: project v%d wrote %t, want %t", i, step.st.Version, wrote, step.wrote)
		}
		v, err := s.View(ctx, id)
		if err != nil {
			t.Fatalf("step %d: view: %v", i, err)
		}
		if v.Seq != step.seq {
			t.Errorf("step %d: view at v%d, want v%d", i, v.Seq, step.seq)
		}
	}
	v, _ := s.View(ctx, id)
	want := store.Summary{ID: id, Seq: 3, Status: domain.StatusInProgress, Route: "r1", Sender: "SENDER",
		Recipient: "RECIPIENT", Workflow: "WF", Filename: id + ".dat", Size: 12, Chunks: 3, ChunksSent: 1,
		Created: base, Updated: base.Add(2 * time.Second)}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("view: got %+v, want %+v", v, want)
	}
	if _, err := s.View(ctx, newID()); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("view of a new id: err = %v, want ErrNotFound", err)
	}
}

// view is a transfer as the history tests project it.
type view struct {
	sender, recipient, route, workflow string
	created, updated                   time.Time
	status                             domain.Status
}

// project stores the view of a made-up transfer and returns its id.
func project(t *testing.T, s *store.Store, v view) string {
	t.Helper()
	id := newID()
	st := domain.State{
		ID: id, Version: 2, Status: v.status, Created: v.created, Updated: v.updated,
		Request: domain.Requested{Route: v.route, Sender: v.sender, Recipient: v.recipient, Workflow: v.workflow, Size: 1, ChunkSize: 1, Chunks: 1},
	}
	if v.status == domain.StatusFailed {
		st.LastFailure = &domain.Failed{Kind: domain.KindInvalid, Message: "bad"}
	}
	if ok, err := s.Project(context.Background(), st); err != nil || !ok {
		t.Fatalf("project: %t, %v", ok, err)
	}
	return id
}

// collect pages through q and returns the ids in the order returned,
// failing on duplicates or on pages larger than the limit.
func collect(t *testing.T, s *store.Store, q store.Query) ([]string, int) {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	pages := 0
	for {
		p, err := s.History(context.Background(), q)
		if err != nil {
			t.Fatalf("history %+v: %v", q, err)
		}
		pages++
		if q.Limit > 0 && len(p.Items) > q.Limit {
			t.Fatalf("page of %d items, limit %d", len(p.Items), q.Limit)
		}
		for _, it := range p.Items {
			if seen[it.ID] {
				t.Fatalf("%s seen twice", it.ID)
			}
			seen[it.ID] = true
			ids = append(ids, it.ID)
		}
		if p.Cursor == "" {
			return ids, pages
		}
		if pages > 100 {
			t.Fatal("history does not end")
		}
		q.Cursor = p.Cursor
	}
}

func sameSet(t *testing.T, got, want []string) {
	t.Helper()
	g, w := append([]string(nil), got...), append([]string(nil), want...)
	sort.Strings(g)
	sort.Strings(w)
	if !reflect.DeepEqual(g, w) {
		t.Errorf("got ids %v, want %v", got, want)
	}
}

func testHistoryByStatus(t *testing.T, h DynamoDBHarness) {
	s := h.NewStore(t)
	s.Now = func() time.Time { return base } // 2024-06-03T18:00Z
	day := func(d, hour int) time.Time { return time.Date(2024, 6, d, hour, 0, 0, 0, time.UTC) }

	// In the window (June 1 00:00 to now), newest first.
	var want []string
	for _, at := range []time.Time{day(3, 17), day(3, 2), day(2, 23), day(2, 12), day(2, 0), day(1, 9), day(1, 0)} {
		want = append(want, project(t, s, view{sender: "A", created: at.Add(-time.Hour), updated: at, status: domain.StatusInProgress}))
	}
	// Outside it: other status, before Since, after Until.
	project(t, s, view{sender: "A", created: day(2, 1), updated: day(2, 5), status: domain.StatusDelivered})
	project(t, s, view{sender: "A", created: day(2, 1), updated: day(2, 6), status: domain.StatusFailed})
	project(t, s, view{created: day(1, 0).Add(-2 * time.Hour), updated: day(1, 0).Add(-time.Second), status: domain.StatusInProgress})
	project(t, s, view{created: day(3, 18), updated: day(3, 19), status: domain.StatusInProgress})

	got, pages := collect(t, s, store.Query{Status: domain.StatusInProgress, Since: day(1, 0), Limit: 3})
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want newest first %v", got, want)
	}
	if pages < 3 {
		t.Errorf("%d pages of 3 for %d items", pages, len(want))
	}

	t.Run("default window is the last 24 hours", func(t *testing.T) {
		got, _ := collect(t, s, store.Query{Status: domain.StatusInProgress})
		if !reflect.DeepEqual(got, want[:3]) {
			t.Errorf("got %v, want %v", got, want[:3])
		}
	})
	t.Run("one page when the limit allows", func(t *testing.T) {
		p, err := s.History(context.Background(), store.Query{Status: domain.StatusFailed, Since: day(1, 0)})
		if err != nil || len(p.Items) != 1 || p.Cursor != "" {
			t.Fatalf("got %+v, %v", p, err)
		}
		if it := p.Items[0]; it.Status != domain.StatusFailed || it.LastError != "bad" || it.Sender != "A" {
			t.Errorf("summary %+v", it)
		}
	})
	t.Run("a cursor belongs to its query", func(t *testing.T) {
		p, err := s.History(context.Background(), store.Query{Status: domain.StatusInProgress, Since: day(1, 0), Limit: 1})
		if err != nil || p.Cursor == "" {
			t.Fatalf("got %+v, %v", p, err)
		}
		_, err = s.History(context.Background(), store.Query{Status: domain.StatusDelivered, Cursor: p.Cursor})
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("err = %v, want kind invalid", err)
		}
		_, err = s.History(context.Background(), store.Query{Status: domain.StatusInProgress, Cursor: "garbage"})
		if domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("err = %v, want kind invalid", err)
		}
	})
	t.Run("a selector is required", func(t *testing.T) {
		if _, err := s.History(context.Background(), store.Query{}); domain.KindOf(err) != domain.KindInvalid {
			t.Errorf("err = %v, want kind invalid", err)
		}
	})
}

// testHistoryAcrossShards: a busy day's transfers of one status and one
// sender, whose index items are spread over the indexes' shards, come back
// newest first, each once, whatever the page size, with filters too.
func testHistoryAcrossShards(t *testing.T, h DynamoDBHarness) {
	s := h.NewStore(t)
	s.Now = func() time.Time { return base } // 2024-06-03T18:00Z
	start := time.Date(2024, 6, 2, 6, 0, 0, 0, time.UTC)
	type made struct {
		id    string
		at    time.Time
		route string
	}
	var all []made
	for i := range 60 {
		at := start.Add(time.Duration(i*29) * time.Minute) // over two days' buckets, before now
		route := []string{"x", "y", "z"}[i%3]
		id := project(t, s, view{sender: "BUSY", recipient: "R", route: route, created: at, updated: at, status: domain.StatusInProgress})
		all = append(all, made{id, at, route})
	}
	newestFirst := func(keep func(made) bool) []string {
		var out []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				out = append(out, all[i].id)
			}
		}
		return out
	}
	every := func(made) bool { return true }
	since := start.Add(-time.Hour)
	for _, tt := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"status, pages of 7", store.Query{Status: domain.StatusInProgress, Since: since, Limit: 7}, newestFirst(every)},
		{"status, pages of 1", store.Query{Status: domain.StatusInProgress, Since: since, Limit: 1}, newestFirst(every)},
		{"status, one page", store.Query{Status: domain.StatusInProgress, Since: since, Limit: 1000}, newestFirst(every)},
		{"sender, pages of 4", store.Query{Sender: "BUSY", Since: since, Limit: 4}, newestFirst(every)},
		{"sender with a route filter, pages of 5", store.Query{Sender: "BUSY", Route: "y", Since: since, Limit: 5},
			newestFirst(func(m made) bool { return m.route == "y" })},
		{"route with a status filter", store.Query{Route: "z", Status: domain.StatusInProgress, Since: since, Limit: 6},
			newestFirst(func(m made) bool { return m.route == "z" })},
		{"a window inside the day", store.Query{Status: domain.StatusInProgress, Since: all[10].at, Until: all[40].at, Limit: 9},
			newestFirst(func(m made) bool { return !m.at.Before(all[10].at) && !m.at.After(all[40].at) })},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, pages := collect(t, s, tt.q)
			if !reflect.DeepEqual(got, tt.want) {
				sameSet(t, got, tt.want)
				t.Errorf("got %v, want newest first %v", got, tt.want)
			}
			if tt.q.Limit < len(tt.want) && pages < len(tt.want)/tt.q.Limit {
				t.Errorf("%d pages of %d for %d items", pages, tt.q.Limit, len(tt.want))
			}
		})
	}
}

func testHistoryByParty(t *testing.T, h DynamoDBHarness) {
	s := h.NewStore(t)
	s.Now = func() time.Time { return base }
	at := func(month time.Month, d int) time.Time { return time.Date(2024, month, d, 10, 0, 0, 0, time.UTC) }

	type tr struct {
		v  view
		id string
	}
	all := []*tr{
		{v: view{sender: "S1", recipient: "R1", route: "x", created: at(4, 30), status: domain.StatusDelivered}},
		{v: view{sender: "S1", recipient: "R1", route: "y", workflow: "W1", created: at(5, 2), status: domain.StatusInProgress}},
		{v: view{sender: "S1", recipient: "R2", route: "x", created: at(5, 20), status: domain.StatusDelivered}},
		{v: view{sender: "S2", recipient: "R1", route: "x", workflow: "W1", created: at(6, 1), status: domain.StatusDelivered}},
		{v: view{sender: "S1", recipient: "R1", route: "x", created: at(6, 2), status: domain.StatusFailed}},
		{v: view{sender: "S2", recipient: "R1", route: "y", created: at(6, 3), status: domain.StatusDelivered}},
		{v: view{sender: "S1", recipient: "R1", route: "x", created: at(3, 1), status: domain.StatusDelivered}}, // before Since
	}
	for _, x := range all {
		x.v.updated = x.v.created.Add(time.Minute)
		x.id = project(t, s, x.v)
	}
	ids := func(keep func(view) bool) []string {
		var out []string
		for i := len(all) - 2; i >= 0; i-- { // newest first, without the last
			if keep(all[i].v) {
				out = append(out, all[i].id)
			}
		}
		return out
	}
	since := at(4, 1)
	tests := []struct {
		name string
		q    store.Query
		want []string
	}{
		{"sender over three months", store.Query{Sender: "S1", Since: since, Limit: 2},
			ids(func(v view) bool { return v.sender == "S1" })},
		{"recipient with status filter", store.Query{Recipient: "R1", Status: domain.StatusDelivered, Since: since, Limit: 1},
			ids(func(v view) bool { return v.recipient == "R1" && v.status == domain.StatusDelivered })},
		{"sender with recipient and route filters", store.Query{Sender: "S1", Recipient: "R1", Route: "x", Since: since},
			ids(func(v view) bool { return v.sender == "S1" && v.recipient == "R1" && v.route == "x" })},
		{"route", store.Query{Route: "y", Since: since, Limit: 1},
			ids(func(v view) bool { return v.route == "y" })},
		{"recipient with workflow filter", store.Query{Recipient: "R1", Workflow: "W1", Since: since, Limit: 1},
			ids(func(v view) bool { return v.recipient == "R1" && v.workflow == "W1" })},
		{"nobody", store.Query{Sender: "S3", Since: since}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := collect(t, s, tt.q)
			if !reflect.DeepEqual(got, tt.want) {
				sameSet(t, got, tt.want)
				t.Errorf("got %v, want newest first %v", got, tt.want)
			}
		})
	}
}

func testStream(t *testing.T, h DynamoDBHarness) {
	ctx := context.Background()
	s := h.NewStore(t)
	sc := h.Streams(t)
	id := newID()
	req := request(t, id, 2, base)
	s1 := mustAppend(t, s, domain.State{}, req)
	evs := decide(t, s1, domain.Start{Ref: "up"}, base.Add(time.Second))
	evs = append(evs, chunk(t, domain.Fold(s1, evs...), base.Add(2*time.Second))...)
	s3 := mustAppend(t, s, s1, evs...)
	if _, err := s.Project(ctx, s3); err != nil {
		t.Fatal(err)
	}
	wantEvents := append([]domain.Event{req}, evs...)
	wantStates := []domain.State{s1, domain.Fold(s1, evs[0]), s3}

	arn, err := s.StreamARN(ctx)
	if err != nil {
		t.Fatal(err)
	}
	images := readStream(t, sc, arn, 4)
	var gotEvents []domain.Event
	var gotStates []domain.State
	views := 0
	for _, img := range images {
		if !store.IsEventImage(img) {
			views++
			if _, _, err := store.DecodeImage(img); domain.KindOf(err) != domain.KindInvalid {
				t.Errorf("decode of a view image: err = %v, want kind invalid", err)
			}
			continue
		}
		e, st, err := store.DecodeImage(img)
		if err != nil {
			t.Fatal(err)
		}
		gotEvents = append(gotEvents, e)
		gotStates = append(gotStates, st)
	}
	if views != 1 {
		t.Errorf("%d view images, want 1", views)
	}
	sort.Slice(gotEvents, func(i, j int) bool { return gotEvents[i].Seq < gotEvents[j].Seq })
	sort.Slice(gotStates, func(i, j int) bool { return gotStates[i].Version < gotStates[j].Version })
	if !reflect.DeepEqual(gotEvents, wantEvents) {
		t.Errorf("events: got %+v\nwant %+v", gotEvents, wantEvents)
	}
	if !reflect.DeepEqual(gotStates, wantStates) {
		t.Errorf("states: got %+v\nwant %+v", gotStates, wantStates)
	}
}

// readStream reads the NEW_IMAGEs of INSERT and MODIFY records from every
// shard of the stream until it has want of them or ten seconds pass.
func readStream(t *testing.T, sc *dynamodbstreams.Client, arn string, want int) []map[string]events.DynamoDBAttributeValue {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(10 * time.Second)
	var out []map[string]events.DynamoDBAttributeValue
	desc, err := sc.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: &arn})
	if err != nil {
		t.Fatal(err)
	}
	for _, sh := range desc.StreamDescription.Shards {
		it, err := sc.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: &arn, ShardId: sh.ShardId, ShardIteratorType: streamtypes.ShardIteratorTypeTrimHorizon,
		})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil && len(out) < want && time.Now().Before(deadline) {
			recs, err := sc.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs.Records {
				if r.Dynamodb != nil && r.Dynamodb.NewImage != nil {
					out = append(out, store.StreamImage(r.Dynamodb.NewImage))
				}
			}
			iter = recs.NextShardIterator
			if len(recs.Records) == 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	if len(out) < want {
		t.Fatalf("read %d stream images, want %d", len(out), want)
	}
	return out
}

func testWriteCount(t *testing.T, h DynamoDBHarness) {
	ctx := context.Background()
	var c store.WriteCounter
	s := h.NewStore(t, func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, c.Middleware()) })
	const n = 5
	at := base
	step := func(st domain.State, cmd domain.Command) domain.State {
		t.Helper()
		at = at.Add(time.Second)
		return mustAppend(t, s, st, decide(t, st, cmd, at)...)
	}
	project := func(st domain.State) {
		t.Helper()
		if ok, err := s.Project(ctx, st); err != nil || !ok {
			t.Fatalf("project v%d: %t, %v", st.Version, ok, err)
		}
	}

	id := newID()
	st := mustAppend(t, s, domain.State{}, request(t, id, n, at))
	project(st)
	st = step(st, domain.Start{Ref: "up"})
	for i := 1; i <= n; i++ {
		st = step(st, domain.RecordChunk{Index: i, Bytes: st.Request.Chunk(i).Length})
	}
	st = step(st, domain.Complete{Location: "null://" + id})
	project(st)

	if st.Status != domain.StatusDelivered || st.Version != n+3 {
		t.Fatalf("transfer ended %s at v%d", st.Status, st.Version)
	}
	if got, want := c.Count(), int64(n+5); got != want {
		t.Errorf("a transfer of %d chunks cost %d writes, want %d", n, got, want)
	}
	if got := c.Calls("PutItem"); got != n+5 {
		t.Errorf("%d PutItem calls, want %d", got, n+5)
	}
}
