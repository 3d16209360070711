package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ferryhq/ferry/domain"
)

// History query limits.
const (
	DefaultLimit = 50   // items per page when Query.Limit is not positive
	MaxLimit     = 1000 // items per page at most; larger limits are lowered
	MaxBuckets   = 400  // days (status) or months (others) one query may span
)

// Query selects transfers from the read model. At least one of Status,
// Sender, Recipient and Route must be set. The first set of Sender,
// Recipient, Route, Status chooses the index; the others, and Workflow,
// filter its items.
//
// Since and Until bound the time window, both inclusive. It applies to the
// transfers' Created time when Sender, Recipient or Route chooses the index,
// and to their Updated time (the time of their latest event) when only
// Status is set. Until defaults to now, Since to 24 hours before Until.
type Query struct {
	Status    domain.Status
	Sender    string
	Recipient string
	Route     string
	Workflow  string
	Since     time.Time
	Until     time.Time
	// Limit is the most items a page holds: DefaultLimit when not positive,
	// at most MaxLimit.
	Limit int
	// Cursor continues the query that returned it (Page.Cursor). It carries
	// the time window resolved on the first page, so later pages see the
	// same window; the selectors must be the same as on the first page.
	Cursor string
}

// Page is one page of a history query.
type Page struct {
	Items []Summary
	// Cursor fetches the next page; "" when there are no more items. A
	// non-empty cursor may still lead to an empty last page.
	Cursor string
}

// cursor is the decoded form of Page.Cursor.
type cursor struct {
	Index  string `json:"i"`
	Filter string `json:"f"` // fingerprint of the selectors
	Since  int64  `json:"s"` // unix nanoseconds
	Until  int64  `json:"u"`
	Bucket int    `json:"b"` // position in buckets(since, until)
	// Shards holds where the reading of each of the bucket's shards
	// stopped; none before the bucket's first page.
	Shards []shardPos `json:"h,omitempty"`
}

// shardPos is where a shard's reading stopped: after the item with Key
// (none: before its first), or Done.
type shardPos struct {
	Key  map[string]string `json:"k,omitempty"`
	Done bool              `json:"d,omitempty"`
}

func encodeCursor(c cursor) string {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // strings and numbers only
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil {
		return c, domain.Errorf(domain.KindInvalid, "history: malformed cursor")
	}
	if ix, ok := indexNamed(c.Index); !ok || c.Bucket < 0 || c.Since > c.Until || (len(c.Shards) != 0 && len(c.Shards) != ix.shards) {
		return c, domain.Errorf(domain.KindInvalid, "history: malformed cursor")
	}
	return c, nil
}

// plan is a history query resolved to one index.
type plan struct {
	ix           index
	value        string // the selector's value in the partition key
	since, until time.Time
	filter       string
	names        map[string]string
	values       map[string]types.AttributeValue
	fingerprint  string
}

func planQuery(q Query, now time.Time) (plan, error) {
	var p plan
	var filters []struct{ attr, value string }
	filterOn := func(attr, value string) {
		if value != "" {
			filters = append(filters, struct{ attr, value string }{attr, value})
		}
	}
	switch {
	case q.Sender != "":
		p.ix, p.value = bySender, q.Sender
		filterOn(attrRecipient, q.Recipient)
		filterOn(attrRoute, q.Route)
		filterOn(attrStatus, string(q.Status))
	case q.Recipient != "":
		p.ix, p.value = byRecipient, q.Recipient
		filterOn(attrRoute, q.Route)
		filterOn(attrStatus, string(q.Status))
	case q.Route != "":
		p.ix, p.value = byRoute, q.Route
		filterOn(attrStatus, string(q.Status))
	case q.Status != "":
		p.ix, p.value = byStatus, string(q.Status)
	default:
		return p, domain.Errorf(domain.KindInvalid, "history: give a status, sender, recipient or route")
	}
	filterOn(attrWorkflow, q.Workflow)
	p.names = map[string]string{"#pk": p.ix.pk, "#sk": p.ix.sk}
	p.values = map[string]types.AttributeValue{}
	var conds []string
	for i, f := range filters {
		n, v := fmt.Sprintf("#f%d", i), fmt.Sprintf(":f%d", i)
		p.names[n] = f.attr
		p.values[v] = str(f.value)
		conds = append(conds, n+" = "+v)
	}
	p.filter = strings.Join(conds, " AND ")
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00%s", q.Status, q.Sender, q.Recipient, q.Route, q.Workflow)
	p.fingerprint = fmt.Sprintf("%016x", h.Sum64())

	p.until = q.Until
	if p.until.IsZero() {
		p.until = now
	}
	p.since = q.Since
	if p.since.IsZero() {
		p.since = p.until.Add(-24 * time.Hour)
	}
	if p.since.After(p.until) {
		return p, domain.Errorf(domain.KindInvalid, "history: since %s is after until %s", p.since.Format(time.RFC3339), p.until.Format(time.RFC3339))
	}
	if n := len(p.ix.buckets(p.since, p.until)); n > MaxBuckets {
		return p, domain.Errorf(domain.KindInvalid, "history: the time window spans %d %s, at most %d", n, p.ix.unit(), MaxBuckets)
	}
	return p, nil
}

func (ix index) unit() string {
	if ix.month {
		return "months"
	}
	return "days"
}

// buckets returns the time buckets (days or months, as start times in UTC)
// that the window since..until touches, newest first.
func (ix index) buckets(since, until time.Time) []time.Time {
	since, until = since.UTC(), until.UTC()
	start := func(t time.Time) time.Time {
		if ix.month {
			return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		}
		return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	first := start(since)
	var out []time.Time
	for b := start(until); !b.Before(first); {
		out = append(out, b)
		if len(out) > MaxBuckets {
			break // planQuery rejects the window
		}
		if ix.month {
			b = b.AddDate(0, -1, 0)
		} else {
			b = b.AddDate(0, 0, -1)
		}
	}
	return out
}

// History returns one page of the transfers that q selects from the read
// model, newest first: buckets (days for status, months otherwise) from
// Until's back to Since's, and within a bucket by descending time and id.
// It never scans: each bucket is one or more Query calls on the chosen
// index, with the other criteria as a filter, repeated until the page is
// full or the window is exhausted.
//
// Errors: domain.KindInvalid when no selector is set, the window is inverted
// or spans more than MaxBuckets buckets, or the cursor is malformed or from
// another query; domain.KindUnavailable on throttling or network failure.
func (s *Store) History(ctx context.Context, q Query) (Page, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var cur cursor
	if q.Cursor != "" {
		c, err := decodeCursor(q.Cursor)
		if err != nil {
			return Page{}, err
		}
		cur = c
		q.Since, q.Until = time.Unix(0, c.Since).UTC(), time.Unix(0, c.Until).UTC()
	}
	p, err := planQuery(q, now())
	if err != nil {
		return Page{}, err
	}
	if q.Cursor != "" && (cur.Index != p.ix.name || cur.Filter != p.fingerprint) {
		return Page{}, domain.Errorf(domain.KindInvalid, "history: the cursor belongs to another query")
	}
	buckets := p.ix.buckets(p.since, p.until)
	var page Page
	b := cur.Bucket
	readers := p.ix.readers(cur.Shards)
	for b < len(buckets) {
		if err := s.fill(ctx, p, buckets[b], readers, limit-len(page.Items)); err != nil {
			return Page{}, err
		}
		// Take the newest head while every shard that may have more has
		// one to compare.
		for len(page.Items) < limit {
			i := newest(p.ix, readers)
			if i < 0 {
				break
			}
			r := readers[i]
			item := r.buf[0]
			r.buf = r.buf[1:]
			r.taken = p.ix.key(item)
			sum, err := summaryOf(item)
			if err != nil {
				return Page{}, fmt.Errorf("history: %w", err)
			}
			page.Items = append(page.Items, sum)
		}
		if drained(readers) {
			b, readers = b+1, p.ix.readers(nil)
		}
		if len(page.Items) >= limit {
			if b < len(buckets) {
				page.Cursor = encodeCursor(cursor{
					Index: p.ix.name, Filter: p.fingerprint,
					Since: p.since.UnixNano(), Until: p.until.UnixNano(),
					Bucket: b, Shards: positions(readers),
				})
			}
			return page, nil
		}
	}
	return page, nil
}

// shardReader reads one shard of a bucket, newest first.
type shardReader struct {
	shard int
	taken map[string]types.AttributeValue // the key of the last item taken
	next  map[string]types.AttributeValue // where the next Query starts
	buf   []map[string]types.AttributeValue
	// exhausted: the shard has no items after buf's.
	exhausted bool
}

// readers returns a bucket's shard readers, where a cursor's positions
// left them (none: from the start).
func (ix index) readers(pos []shardPos) []*shardReader {
	rs := make([]*shardReader, ix.shards)
	for i := range rs {
		rs[i] = &shardReader{shard: i}
		if i < len(pos) {
			rs[i].exhausted = pos[i].Done
			rs[i].taken = keyValues(pos[i].Key)
			rs[i].next = rs[i].taken
		}
	}
	return rs
}

func positions(rs []*shardReader) []shardPos {
	out := make([]shardPos, len(rs))
	for i, r := range rs {
		if r.exhausted && len(r.buf) == 0 {
			out[i].Done = true
		} else {
			out[i].Key = keyStrings(r.taken) // what was read past it is read again
		}
	}
	return out
}

// drained reports whether every shard of the bucket is read and taken.
func drained(rs []*shardReader) bool {
	for _, r := range rs {
		if !r.exhausted || len(r.buf) > 0 {
			return false
		}
	}
	return true
}

// newest returns the reader whose head is the newest item, or -1 when a
// shard that may have more has nothing read to compare (fill it first) or
// every shard is drained.
func newest(ix index, rs []*shardReader) int {
	best, bestKey := -1, ""
	for i, r := range rs {
		if len(r.buf) == 0 {
			if !r.exhausted {
				return -1
			}
			continue
		}
		k := attrString(r.buf[0], ix.sk)
		if best < 0 || k > bestKey {
			best, bestKey = i, k
		}
	}
	return best
}

// fill reads the next items of every shard that has none read and may
// have more, side by side: about its share of the want items still to
// find.
func (s *Store) fill(ctx context.Context, p plan, bucket time.Time, rs []*shardReader, want int) error {
	share := min(want, max(8, 2*want/len(rs)+1))
	var wg sync.WaitGroup
	errs := make([]error, len(rs))
	for i, r := range rs {
		if len(r.buf) > 0 || r.exhausted {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := p.query(s.table, bucket, r.shard, share)
			in.ExclusiveStartKey = r.next
			out, err := s.db.Query(ctx, in)
			if err != nil {
				errs[i] = wrap("history", err)
				return
			}
			r.buf, r.next = out.Items, out.LastEvaluatedKey
			r.exhausted = len(out.LastEvaluatedKey) == 0
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func attrString(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// query returns the Query input reading shard of bucket of p's window.
func (p plan) query(table string, bucket time.Time, shard, want int) *dynamodb.QueryInput {
	values := map[string]types.AttributeValue{
		":b":  str(p.ix.partition(p.value, bucket, shard)),
		":lo": str(formatTime(p.since)),
		// "$" sorts just after "#", so every "<until>#<id>" is below it.
		":hi": str(formatTime(p.until) + "$"),
	}
	for k, v := range p.values {
		values[k] = v
	}
	in := &dynamodb.QueryInput{
		TableName:                 aws.String(table),
		IndexName:                 aws.String(p.ix.name),
		KeyConditionExpression:    aws.String("#pk = :b AND #sk BETWEEN :lo AND :hi"),
		ExpressionAttributeNames:  p.names,
		ExpressionAttributeValues: values,
		ScanIndexForward:          aws.Bool(false),
		Limit:                     aws.Int32(int32(want)),
	}
	if p.filter != "" {
		in.FilterExpression = aws.String(p.filter)
		// A filter drops items after Limit counts them: read more per call.
		in.Limit = aws.Int32(int32(min(max(4*want, 100), MaxLimit)))
	}
	return in
}

// key returns the exclusive start key that continues a Query on ix after
// item: the table's key and the index's key.
func (ix index) key(item map[string]types.AttributeValue) map[string]types.AttributeValue {
	k := map[string]types.AttributeValue{}
	for _, a := range []string{attrPK, attrSK, ix.pk, ix.sk} {
		if v, ok := item[a]; ok {
			k[a] = v
		}
	}
	return k
}

// keyStrings and keyValues convert keys, whose attributes are all strings,
// to and from their cursor form.
func keyStrings(key map[string]types.AttributeValue) map[string]string {
	if len(key) == 0 {
		return nil
	}
	m := make(map[string]string, len(key))
	for k, v := range key {
		if s, ok := v.(*types.AttributeValueMemberS); ok {
			m[k] = s.Value
		}
	}
	return m
}

func keyValues(m map[string]string) map[string]types.AttributeValue {
	if len(m) == 0 {
		return nil
	}
	key := make(map[string]types.AttributeValue, len(m))
	for k, v := range m {
		key[k] = str(v)
	}
	return key
}
