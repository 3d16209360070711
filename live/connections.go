// Package live is ferry's live channel: WebSocket connections that watch
// transfers, as API Gateway's WebSocket API holds them, their
// subscriptions in DynamoDB, and the @connections management API that
// pushes each event to its subscribers.
//
// The connections table holds, under string keys pk and sk, with a TTL
// attribute expires (API Gateway closes a connection after two hours):
//
//	C#{connection}               C            the connection: its caller's party and role
//	C#{connection}               S#{topic}    a subscription, from the connection's side
//	T#{topic}                    {connection} a subscription, from the topic's side
//	Q#{connection}#{transfer}    Q            the last seq of the transfer sent to it
//
// so that a topic's subscribers are one Query and a connection's items
// another: nothing is ever scanned. The cursors have partitions of their
// own, so that a connection watching a busy party does not concentrate a
// write per event on one key; they are left to the TTL.
package live

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/awserr"
)

// Lifetime is how long the table keeps a connection's items: API Gateway
// closes a WebSocket connection after two hours at most, so a connection
// that vanished without $disconnect is gone from the table soon after.
const Lifetime = 2*time.Hour + 10*time.Minute

// MaxSubscriptions is how many topics one connection may watch.
const MaxSubscriptions = 100

// Identity is who holds a connection, as the authorizer found it.
type Identity struct {
	Party, Role, KeyID string
}

// Topic is what a connection watches: one transfer, or every transfer a
// party sends or receives.
type Topic string

// TransferTopic and PartyTopic name the two kinds of topic.
func TransferTopic(id string) Topic { return Topic("transfer:" + id) }
func PartyTopic(party string) Topic { return Topic("party:" + party) }

// Subscriber is a connection watching a topic.
type Subscriber struct {
	Connection string
	Identity
}

// DB is what Connections needs of DynamoDB.
type DB interface {
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	Query(ctx context.Context, in *dynamodb.QueryInput, opts ...func(*dynamodb.Options)) (*dynamodb.QueryOutput, error)
	BatchWriteItem(ctx context.Context, in *dynamodb.BatchWriteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.BatchWriteItemOutput, error)
}

// Connections is the connections table.
type Connections struct {
	DB    DB
	Table string
	Now   func() time.Time
}

const (
	attrPK, attrSK, attrExpires  = "pk", "sk", "expires"
	attrParty, attrRole, attrKey = "party", "role", "keyId"
	attrSeq                      = "seq"
)

func s(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }

func (c *Connections) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Connections) expires() types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(c.now().Add(Lifetime).Unix(), 10)}
}

func connPK(id string) types.AttributeValue { return s("C#" + id) }

func cursorPK(id, transfer string) types.AttributeValue { return s("Q#" + id + "#" + transfer) }

// Connect records a new connection and who holds it.
func (c *Connections) Connect(ctx context.Context, id string, who Identity) error {
	_, err := c.DB.PutItem(ctx, &dynamodb.PutItemInput{TableName: &c.Table, Item: map[string]types.AttributeValue{
		attrPK: connPK(id), attrSK: s("C"), attrParty: s(who.Party), attrRole: s(who.Role), attrKey: s(who.KeyID), attrExpires: c.expires(),
	}})
	return classify("record the connection", err)
}

func identityOf(item map[string]types.AttributeValue) Identity {
	get := func(k string) string {
		if v, ok := item[k].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	return Identity{Party: get(attrParty), Role: get(attrRole), KeyID: get(attrKey)}
}

// Subscribe adds topic to connection id's subscriptions; cursor, when
// set, is the transfer whose events up to seq the subscriber has already
// seen (the state it was shown on subscribing). Domain.KindConflict when
// the connection watches MaxSubscriptions topics already.
func (c *Connections) Subscribe(ctx context.Context, id string, who Identity, topic Topic, cursor string, seq int) error {
	items, err := c.items(ctx, id)
	if err != nil {
		return err
	}
	n := 0
	for _, sk := range items {
		if strings.HasPrefix(sk, "S#") {
			n++
		}
	}
	if n >= MaxSubscriptions {
		return domain.Errorf(domain.KindConflict, "a connection watches at most %d topics", MaxSubscriptions)
	}
	exp := c.expires()
	puts := []map[string]types.AttributeValue{
		{attrPK: s("T#" + string(topic)), attrSK: s(id), attrParty: s(who.Party), attrRole: s(who.Role), attrKey: s(who.KeyID), attrExpires: exp},
		{attrPK: connPK(id), attrSK: s("S#" + string(topic)), attrExpires: exp},
	}
	if cursor != "" {
		puts = append(puts, map[string]types.AttributeValue{attrPK: cursorPK(id, cursor), attrSK: s("Q"),
			attrSeq: &types.AttributeValueMemberN{Value: strconv.Itoa(seq)}, attrExpires: exp})
	}
	return c.write(ctx, "subscribe", puts, nil)
}

// Unsubscribe removes topic from connection id's subscriptions.
func (c *Connections) Unsubscribe(ctx context.Context, id string, topic Topic) error {
	return c.write(ctx, "unsubscribe", nil, []map[string]types.AttributeValue{
		{attrPK: s("T#" + string(topic)), attrSK: s(id)},
		{attrPK: connPK(id), attrSK: s("S#" + string(topic))},
	})
}

// Disconnect removes connection id and all its subscriptions.
func (c *Connections) Disconnect(ctx context.Context, id string) error {
	items, err := c.items(ctx, id)
	if err != nil {
		return err
	}
	var dels []map[string]types.AttributeValue
	for _, sk := range items {
		dels = append(dels, map[string]types.AttributeValue{attrPK: connPK(id), attrSK: s(sk)})
		if topic, ok := strings.CutPrefix(sk, "S#"); ok {
			dels = append(dels, map[string]types.AttributeValue{attrPK: s("T#" + topic), attrSK: s(id)})
		}
	}
	return c.write(ctx, "forget the connection", nil, dels)
}

// Subscribers returns the connections watching topic.
func (c *Connections) Subscribers(ctx context.Context, topic Topic) ([]Subscriber, error) {
	var out []Subscriber
	in := &dynamodb.QueryInput{
		TableName: &c.Table, KeyConditionExpression: aws.String("pk = :t"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": s("T#" + string(topic))},
	}
	for {
		page, err := c.DB.Query(ctx, in)
		if err != nil {
			return nil, classify("find the subscribers", err)
		}
		for _, item := range page.Items {
			sk, _ := item[attrSK].(*types.AttributeValueMemberS)
			if sk != nil {
				out = append(out, Subscriber{Connection: sk.Value, Identity: identityOf(item)})
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// Claim moves connection id's cursor on transfer to seq and returns where
// it was (0 if nowhere): the caller then sends the events after that, up
// to seq. ok is false, and nothing is to be sent, when the cursor is at seq
// or past it already: the event was sent (an SQS message delivered twice,
// or a later event's catch-up sent it).
func (c *Connections) Claim(ctx context.Context, id, transfer string, seq int) (from int, ok bool, err error) {
	out, err := c.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &c.Table,
		Key:                       map[string]types.AttributeValue{attrPK: cursorPK(id, transfer), attrSK: s("Q")},
		UpdateExpression:          aws.String("SET seq = :seq, expires = :exp"),
		ConditionExpression:       aws.String("attribute_not_exists(seq) OR seq < :seq"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":seq": &types.AttributeValueMemberN{Value: strconv.Itoa(seq)}, ":exp": c.expires()},
		ReturnValues:              types.ReturnValueUpdatedOld,
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, classify("move the cursor", err)
	}
	if n, ok := out.Attributes[attrSeq].(*types.AttributeValueMemberN); ok {
		from, _ = strconv.Atoi(n.Value)
	}
	return from, true, nil
}

// Rewind moves connection id's cursor on transfer back from seq to from,
// when a push failed after Claim: the retry then sends from there. It does
// nothing if the cursor moved on meanwhile.
func (c *Connections) Rewind(ctx context.Context, id, transfer string, seq, from int) error {
	_, err := c.DB.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           &c.Table,
		Key:                 map[string]types.AttributeValue{attrPK: cursorPK(id, transfer), attrSK: s("Q")},
		UpdateExpression:    aws.String("SET seq = :from"),
		ConditionExpression: aws.String("seq = :seq"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":seq": &types.AttributeValueMemberN{Value: strconv.Itoa(seq)}, ":from": &types.AttributeValueMemberN{Value: strconv.Itoa(from)},
		},
	})
	var failed *types.ConditionalCheckFailedException
	if errors.As(err, &failed) {
		return nil
	}
	return classify("rewind the cursor", err)
}

// items returns the sort keys of connection id's items.
func (c *Connections) items(ctx context.Context, id string) ([]string, error) {
	var out []string
	in := &dynamodb.QueryInput{
		TableName: &c.Table, KeyConditionExpression: aws.String("pk = :c"), ProjectionExpression: aws.String("sk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": connPK(id)},
	}
	for {
		page, err := c.DB.Query(ctx, in)
		if err != nil {
			return nil, classify("read the connection's subscriptions", err)
		}
		for _, item := range page.Items {
			if sk, ok := item[attrSK].(*types.AttributeValueMemberS); ok {
				out = append(out, sk.Value)
			}
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		in.ExclusiveStartKey = page.LastEvaluatedKey
	}
}

// write puts and deletes items, 25 a batch, until DynamoDB has taken them
// all.
func (c *Connections) write(ctx context.Context, op string, puts, dels []map[string]types.AttributeValue) error {
	var reqs []types.WriteRequest
	for _, item := range puts {
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	for _, key := range dels {
		reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key}})
	}
	for retries := 0; len(reqs) > 0; {
		n := min(len(reqs), 25)
		out, err := c.DB.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{RequestItems: map[string][]types.WriteRequest{c.Table: reqs[:n]}})
		if err != nil {
			return classify(op, err)
		}
		left := out.UnprocessedItems[c.Table]
		if len(left) > 0 {
			if retries++; retries > 8 {
				return domain.Errorf(domain.KindUnavailable, "%s: DynamoDB left %d writes unprocessed", op, len(left))
			}
			time.Sleep(time.Duration(retries) * 50 * time.Millisecond)
		}
		reqs = append(left, reqs[n:]...)
	}
	return nil
}

func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	return awserr.Classify(op, err)
}
