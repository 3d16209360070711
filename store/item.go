package store

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ferryhq/ferry/domain"
)

// TimeLayout is how the store writes times: RFC 3339 in UTC with exactly
// nine fractional digits, so that string order is time order in sort keys.
// time.RFC3339Nano parses it.
const TimeLayout = "2006-01-02T15:04:05.000000000Z07:00"

// Attribute names and key prefixes.
const (
	attrPK         = "pk"
	attrSK         = "sk"
	attrID         = "tid"
	attrSeq        = "seq"
	attrType       = "type"
	attrAt         = "at"
	attrData       = "data"
	attrState      = "state"
	attrWriteID    = "wid"
	attrStatus     = "status"
	attrRoute      = "route"
	attrSender     = "sender"
	attrRecipient  = "recipient"
	attrWorkflow   = "workflow"
	attrFilename   = "filename"
	attrSize       = "size"
	attrChunks     = "chunks"
	attrChunksSent = "chunksSent"
	attrCreated    = "created"
	attrUpdated    = "updated"
	attrLastError  = "lastError"

	transferPrefix = "T#"
	eventPrefix    = "E#"
	viewSK         = "VIEW"
)

// index is a global secondary index of view items.
type index struct {
	name   string
	pk, sk string
	prefix string // of the partition key
	month  bool   // buckets by month of created (else by day of updated)
	// shards is how many partition keys a bucket's writes are spread over
	// (the transfer id's hash picks one), so that no key takes more than
	// DynamoDB's 1,000 writes a second per partition key when every
	// transfer of a day shares a status or a busy sender; a query reads
	// every shard and merges them in order. docs/scale.md has the sums.
	shards int
}

// historyShards is how many shards each history index has. Every view
// update of a transfer writes its byStatus item (two writes when the
// status changes) and its bySender, byRecipient and byRoute items (ALL
// projection): a ten-chunk transfer about twelve each, so one key of a
// busy sender takes 1,000 writes a second at about 83 transfers a second;
// 16 shards take it past 1,300 (docs/scale.md).
const historyShards = 16

var (
	byStatus    = index{name: "byStatus", pk: "s_pk", sk: "s_sk", prefix: "S#", shards: historyShards}
	bySender    = index{name: "bySender", pk: "snd_pk", sk: "snd_sk", prefix: "SND#", month: true, shards: historyShards}
	byRecipient = index{name: "byRecipient", pk: "rcp_pk", sk: "rcp_sk", prefix: "RCP#", month: true, shards: historyShards}
	byRoute     = index{name: "byRoute", pk: "rt_pk", sk: "rt_sk", prefix: "RT#", month: true, shards: historyShards}
	// byRef finds a transfer by its remote reference (a MESH message id),
	// e.g. when a non-delivery report names the message it is about.
	byRef   = index{name: "byRef", pk: "ref_pk", sk: "ref_sk", prefix: "REF#"}
	indexes = []index{byStatus, bySender, byRecipient, byRoute, byRef}
)

func indexNamed(name string) (index, bool) {
	for _, ix := range indexes {
		if ix.name == name {
			return ix, true
		}
	}
	return index{}, false
}

// bucketLayout formats the time part of an index partition key.
func (ix index) bucketLayout() string {
	if ix.month {
		return "2006-01"
	}
	return "2006-01-02"
}

// partition returns the index partition key for value (a status, sender,
// recipient or route) in the bucket holding t, in shard (0 to ix.shards-1).
func (ix index) partition(value string, t time.Time, shard int) string {
	return fmt.Sprintf("%s%s#%s#%02d", ix.prefix, value, t.UTC().Format(ix.bucketLayout()), shard)
}

// shardOf returns the shard of ix that transfer id's items go to.
func (ix index) shardOf(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(ix.shards))
}

// sortKey returns the index sort key of a view item.
func sortKey(t time.Time, id string) string { return formatTime(t) + "#" + id }

func transferKey(id string) string { return transferPrefix + id }

func eventKey(seq int) string { return fmt.Sprintf("%s%010d", eventPrefix, seq) }

func formatTime(t time.Time) string { return t.UTC().Format(TimeLayout) }

func str(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }

func num(n int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(n, 10)}
}

// eventItem returns the item that stores e with st, the state after it.
func eventItem(e domain.Event, st domain.State, wid string) (map[string]types.AttributeValue, error) {
	data, err := domain.MarshalPayload(e.Payload)
	if err != nil {
		return nil, domain.Errorf(domain.KindInvalid, "append %s v%d: payload: %v", e.TransferID, e.Seq, err)
	}
	snap, err := json.Marshal(st)
	if err != nil {
		return nil, domain.Errorf(domain.KindInvalid, "append %s v%d: state: %v", e.TransferID, e.Seq, err)
	}
	item := map[string]types.AttributeValue{
		attrPK:    str(transferKey(e.TransferID)),
		attrSK:    str(eventKey(e.Seq)),
		attrID:    str(e.TransferID),
		attrSeq:   num(int64(e.Seq)),
		attrType:  str(string(e.Type())),
		attrAt:    str(formatTime(e.At)),
		attrData:  str(string(data)),
		attrState: str(string(snap)),
	}
	if wid != "" {
		item[attrWriteID] = str(wid)
	}
	return item, nil
}

// record is an item's attributes as plain strings, whichever API they came
// from: the DynamoDB API or a stream image.
type record map[string]string

func (r record) int(name string) (int64, error) {
	v, ok := r[name]
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, domain.Errorf(domain.KindInvalid, "attribute %s: %v", name, err)
	}
	return n, nil
}

func (r record) time(name string) (time.Time, error) {
	v, ok := r[name]
	if !ok || v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, domain.Errorf(domain.KindInvalid, "attribute %s: %v", name, err)
	}
	return t, nil
}

// recordOf keeps the string and number attributes of item.
func recordOf(item map[string]types.AttributeValue) record {
	r := make(record, len(item))
	for k, v := range item {
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			r[k] = v.Value
		case *types.AttributeValueMemberN:
			r[k] = v.Value
		}
	}
	return r
}

func eventOf(item map[string]types.AttributeValue) (domain.Event, error) {
	return decodeEvent(recordOf(item))
}

func stateOf(item map[string]types.AttributeValue) (domain.State, error) {
	return decodeState(recordOf(item))
}

func decodeEvent(r record) (domain.Event, error) {
	seq, err := r.int(attrSeq)
	if err != nil {
		return domain.Event{}, err
	}
	at, err := r.time(attrAt)
	if err != nil {
		return domain.Event{}, err
	}
	id := r[attrID]
	if id == "" {
		id = strings.TrimPrefix(r[attrPK], transferPrefix)
	}
	t := domain.EventType(r[attrType])
	p, err := domain.UnmarshalPayload(t, []byte(r[attrData]))
	if err != nil {
		return domain.Event{}, fmt.Errorf("event %s v%d: %w", id, seq, err)
	}
	return domain.Event{TransferID: id, Seq: int(seq), At: at, Payload: p}, nil
}

func decodeState(r record) (domain.State, error) {
	raw, ok := r[attrState]
	if !ok {
		return domain.State{}, domain.Errorf(domain.KindInvalid, "event item has no state")
	}
	var st domain.State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return domain.State{}, domain.Errorf(domain.KindInvalid, "state: %v", err)
	}
	return st, nil
}

// viewItem returns the read-model item of st.
func viewItem(st domain.State) map[string]types.AttributeValue {
	r := st.Request
	item := map[string]types.AttributeValue{
		attrPK:         str(transferKey(st.ID)),
		attrSK:         str(viewSK),
		attrID:         str(st.ID),
		attrSeq:        num(int64(st.Version)),
		attrStatus:     str(string(st.Status)),
		attrSize:       num(st.Size()),
		attrChunks:     num(int64(r.Chunks)),
		attrChunksSent: num(int64(st.ChunksSent)),
		attrCreated:    str(formatTime(st.Created)),
		attrUpdated:    str(formatTime(st.Updated)),
		byStatus.pk:    str(byStatus.partition(string(st.Status), st.Updated, byStatus.shardOf(st.ID))),
		byStatus.sk:    str(sortKey(st.Updated, st.ID)),
	}
	put := func(name, v string) {
		if v != "" {
			item[name] = str(v)
		}
	}
	put(attrRoute, r.Route)
	put(attrSender, r.Sender)
	put(attrRecipient, r.Recipient)
	put(attrWorkflow, r.Workflow)
	put(attrFilename, r.Filename)
	if st.LastFailure != nil {
		put(attrLastError, st.LastFailure.Message)
	}
	if st.Ref != "" {
		item[byRef.pk] = str(byRef.prefix + st.Ref)
		item[byRef.sk] = str(st.ID)
	}
	for _, k := range []struct {
		ix    index
		value string
	}{{bySender, r.Sender}, {byRecipient, r.Recipient}, {byRoute, r.Route}} {
		if k.value != "" {
			item[k.ix.pk] = str(k.ix.partition(k.value, st.Created, k.ix.shardOf(st.ID)))
			item[k.ix.sk] = str(sortKey(st.Created, st.ID))
		}
	}
	return item
}

func summaryOf(item map[string]types.AttributeValue) (Summary, error) {
	r := recordOf(item)
	var errs []error
	num := func(name string) int64 {
		n, err := r.int(name)
		if err != nil {
			errs = append(errs, err)
		}
		return n
	}
	tm := func(name string) time.Time {
		t, err := r.time(name)
		if err != nil {
			errs = append(errs, err)
		}
		return t
	}
	s := Summary{
		ID:         r[attrID],
		Seq:        int(num(attrSeq)),
		Status:     domain.Status(r[attrStatus]),
		Route:      r[attrRoute],
		Sender:     r[attrSender],
		Recipient:  r[attrRecipient],
		Workflow:   r[attrWorkflow],
		Filename:   r[attrFilename],
		Size:       num(attrSize),
		Chunks:     int(num(attrChunks)),
		ChunksSent: int(num(attrChunksSent)),
		Created:    tm(attrCreated),
		Updated:    tm(attrUpdated),
		LastError:  r[attrLastError],
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("view %s: %w", s.ID, errs[0])
	}
	return s, nil
}
