package store

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ferryhq/ferry/domain"
)

// Keys of the overdue check's items. Each expectation has a partition,
// expect#{route}#{name}, holding when it was first seen (SEEN) and the
// outcome of each window judged (W#{end}); every missed window is also
// listed in the one partition "overdue", sorted by its end, for ferry
// history --overdue. Missed windows are rare (one per expectation and
// window at most), so that partition stays far below DynamoDB's
// per-partition limits. Like the health items they have no index keys and
// no "E#" sort keys, so stream readers and history queries pass them by.
const (
	expectPrefix  = "expect#"
	expectSeenSK  = "SEEN"
	windowPrefix  = "W#"
	overduePK     = "overdue"
	attrOutcome   = "outcome"
	attrExpect    = "expectation"
	attrStart     = "start"
	attrEnd       = "end"
	attrGot       = "got"
	attrWant      = "want"
	attrFirstSeen = "seen"
)

// Window outcomes.
const (
	OutcomeMet    = "met"
	OutcomeMissed = "missed"
)

// WindowRecord is a judged window of an expectation.
type WindowRecord struct {
	Route, Expectation string
	Window             domain.Window
	Outcome            string // OutcomeMet or OutcomeMissed
	Got, Want          int    // transfers delivered in time, and needed
	Checked            time.Time
	// Published is true once the Transfer Overdue event of a missed
	// window is published.
	Published bool
}

func expectPK(route, name string) string { return expectPrefix + route + "#" + name }

func expectKey(route, name, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(expectPK(route, name)), attrSK: str(sk)}
}

// windowSK is the sort key of w's outcome in its expectation's partition.
func windowSK(w WindowRecord) string { return windowPrefix + formatTime(w.Window.End) }

// ExpectationSeen returns when the overdue check first saw the expectation
// name of route, recording now if it never did: windows that ended before
// then are not judged.
func (s *Store) ExpectationSeen(ctx context.Context, route, name string, now time.Time) (time.Time, error) {
	key := expectKey(route, name, expectSeenSK)
	for range 2 { // read; else claim; a lost claim is read again
		out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return time.Time{}, wrap("read expectation "+route+"/"+name, err)
		}
		if out.Item != nil {
			seen, err := recordOf(out.Item).time(attrFirstSeen)
			if err != nil {
				return time.Time{}, wrap("decode expectation "+route+"/"+name, err)
			}
			return seen, nil
		}
		item := expectKey(route, name, expectSeenSK)
		item[attrFirstSeen] = str(formatTime(now))
		writeMu.RLock()
		_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")})
		writeMu.RUnlock()
		var ccf *types.ConditionalCheckFailedException
		if errors.As(err, &ccf) {
			continue
		}
		if err != nil {
			return time.Time{}, wrap("record expectation "+route+"/"+name, err)
		}
		return now.UTC(), nil
	}
	return time.Time{}, wrap("record expectation "+route+"/"+name, errors.New("its record was claimed and is gone"))
}

// JudgedWindows returns the windows of the expectation name of route that
// end after from and at or before to and have an outcome recorded, by
// their end (unix nanoseconds).
func (s *Store) JudgedWindows(ctx context.Context, route, name string, from, to time.Time) (map[int64]WindowRecord, error) {
	out := map[int64]WindowRecord{}
	in := &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND sk BETWEEN :from AND :to"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(expectPK(route, name)), ":from": str(windowPrefix + formatTime(from)), ":to": str(windowPrefix + formatTime(to)),
		},
		ConsistentRead: aws.Bool(true),
	}
	p := dynamodb.NewQueryPaginator(s.db, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, wrap("read windows of "+route+"/"+name, err)
		}
		for _, item := range page.Items {
			w, err := windowOf(item)
			if err != nil {
				return nil, wrap("decode a window of "+route+"/"+name, err)
			}
			if w.Window.End.After(from) {
				out[w.Window.End.UnixNano()] = w
			}
		}
	}
	return out, nil
}

func windowOf(item map[string]types.AttributeValue) (WindowRecord, error) {
	r := recordOf(item)
	w := WindowRecord{Route: r[attrRoute], Expectation: r[attrExpect], Outcome: r[attrOutcome], Published: r[attrPublished] == "true"}
	var errs []error
	var err error
	w.Window.Start, err = r.time(attrStart)
	errs = append(errs, err)
	w.Window.End, err = r.time(attrEnd)
	errs = append(errs, err)
	w.Checked, err = r.time(attrChecked)
	errs = append(errs, err)
	got, err := r.int(attrGot)
	errs = append(errs, err)
	want, err := r.int(attrWant)
	errs = append(errs, err)
	w.Got, w.Want = int(got), int(want)
	return w, errors.Join(errs...)
}

func (w WindowRecord) item(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{
		attrPK: str(pk), attrSK: str(sk),
		attrRoute: str(w.Route), attrExpect: str(w.Expectation), attrOutcome: str(w.Outcome),
		attrStart: str(formatTime(w.Window.Start)), attrEnd: str(formatTime(w.Window.End)), attrChecked: str(formatTime(w.Checked)),
		attrGot: num(int64(w.Got)), attrWant: num(int64(w.Want)), attrPublished: str(strconv.FormatBool(w.Published)),
	}
}

// RecordWindow records w's outcome, once: claimed is false when the window
// already has one (another run judged it), except that a missed window
// whose event was never published may be claimed again. A missed window
// is listed for OverdueWindows too. The caller publishes the Transfer
// Overdue event of a claimed missed window and then calls MarkWindow.
func (s *Store) RecordWindow(ctx context.Context, w WindowRecord) (claimed bool, err error) {
	w.Published = w.Outcome != OutcomeMissed
	writeMu.RLock()
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: w.item(expectPK(w.Route, w.Expectation), windowSK(w)),
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR (#o = :missed AND #p = :f)"),
		ExpressionAttributeNames:  map[string]string{"#o": attrOutcome, "#p": attrPublished},
		ExpressionAttributeValues: map[string]types.AttributeValue{":missed": str(OutcomeMissed), ":f": str("false")},
	})
	writeMu.RUnlock()
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return false, nil
	case err != nil:
		return false, wrap("record window "+w.Route+"/"+w.Expectation, err)
	}
	if w.Outcome != OutcomeMissed {
		return true, nil
	}
	writeMu.RLock()
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: w.item(overduePK, overdueSK(w))})
	writeMu.RUnlock()
	if err != nil {
		return false, wrap("list missed window "+w.Route+"/"+w.Expectation, err)
	}
	return true, nil
}

func overdueSK(w WindowRecord) string {
	return formatTime(w.Window.End) + "#" + w.Route + "#" + w.Expectation
}

// MarkWindow records that the Transfer Overdue event of w, a missed
// window, is published.
func (s *Store) MarkWindow(ctx context.Context, w WindowRecord) error {
	set := func(key map[string]types.AttributeValue) error {
		writeMu.RLock()
		defer writeMu.RUnlock()
		_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
			TableName: &s.table, Key: key,
			UpdateExpression:          aws.String("SET #p = :t"),
			ExpressionAttributeNames:  map[string]string{"#p": attrPublished},
			ExpressionAttributeValues: map[string]types.AttributeValue{":t": str("true")},
		})
		return err
	}
	err := errors.Join(set(expectKey(w.Route, w.Expectation, windowSK(w))),
		set(map[string]types.AttributeValue{attrPK: str(overduePK), attrSK: str(overdueSK(w))}))
	if err != nil {
		return wrap("mark window "+w.Route+"/"+w.Expectation, err)
	}
	return nil
}

// OverdueWindows returns the missed windows that ended from since to until
// (both inclusive), newest first, at most limit (DefaultLimit when not
// positive, MaxLimit at most), and a cursor for the next page ("" when
// there is none).
func (s *Store) OverdueWindows(ctx context.Context, since, until time.Time, limit int, cursor string) ([]WindowRecord, string, error) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	hi := formatTime(until) + "#\uffff"
	after := ""
	if cursor != "" {
		b, err := base64.RawURLEncoding.DecodeString(cursor)
		if err != nil || strings.Count(string(b), "#") < 2 || string(b) > hi {
			return nil, "", domain.Errorf(domain.KindInvalid, "overdue: malformed cursor")
		}
		hi, after = string(b), string(b)
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(overduePK), ":lo": str(formatTime(since)), ":hi": str(hi)},
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(limit + 2)), // the cursor's own item, and one to know there are more
	})
	if err != nil {
		return nil, "", wrap("read missed windows", err)
	}
	var ws []WindowRecord
	next := func() string { return base64.RawURLEncoding.EncodeToString([]byte(overdueSK(ws[len(ws)-1]))) }
	for _, item := range out.Items {
		if attrString(item, attrSK) == after {
			continue // the last item of the page before
		}
		if len(ws) == limit {
			return ws, next(), nil
		}
		w, err := windowOf(item)
		if err != nil {
			return nil, "", wrap("decode a missed window", err)
		}
		ws = append(ws, w)
	}
	if out.LastEvaluatedKey != nil && len(ws) > 0 {
		return ws, next(), nil // DynamoDB's page ended first
	}
	return ws, "", nil
}
