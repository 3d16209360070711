package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// Keys of the health function's items: a partner's state and the notices
// sent about it, under one partition per partner. Their sort keys do not
// start with "E#" and they carry no index keys, so stream readers and
// history queries never take them for transfers.
const (
	healthPrefix   = "health#"
	healthStateSK  = "STATE"
	noticePrefix   = "NOTICE#"
	attrHealthy    = "healthy"
	attrKind       = "kind"
	attrCode       = "code"
	attrReason     = "reason"
	attrSince      = "since"
	attrChecked    = "checked"
	attrAuthFails  = "authFailures"
	attrAnnounced  = "announced"
	attrPublished  = "published"
	attrNoticeTime = "claimed"
)

// PartnerHealth is the last known state of a partner, as the scheduled
// health check keeps it.
type PartnerHealth struct {
	Partner string
	Healthy bool
	// Kind, Code and Reason say why it is unhealthy.
	Kind, Code, Reason string
	// Since is when the partner entered this state; Checked when it was
	// last checked.
	Since, Checked time.Time
	// AuthFailures counts the consecutive checks whose credentials were
	// refused, for backing off before an account locks.
	AuthFailures int
	// Announced is true once the event announcing the state is published.
	Announced bool
}

func healthKey(partner, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: str(healthPrefix + partner), attrSK: str(sk)}
}

// PartnerHealth returns partner's state; ok is false when it has none yet.
func (s *Store) PartnerHealth(ctx context.Context, partner string) (h PartnerHealth, ok bool, err error) {
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: &s.table, Key: healthKey(partner, healthStateSK), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return PartnerHealth{}, false, wrap("read health of "+partner, err)
	}
	if out.Item == nil {
		return PartnerHealth{}, false, nil
	}
	r := recordOf(out.Item)
	h = PartnerHealth{Partner: partner, Healthy: r[attrHealthy] == "true", Kind: r[attrKind], Code: r[attrCode],
		Reason: r[attrReason], Announced: r[attrAnnounced] == "true"}
	var errs []error
	h.Since, err = r.time(attrSince)
	errs = append(errs, err)
	h.Checked, err = r.time(attrChecked)
	errs = append(errs, err)
	n, err := r.int(attrAuthFails)
	errs = append(errs, err)
	h.AuthFailures = int(n)
	if err := errors.Join(errs...); err != nil {
		return PartnerHealth{}, false, wrap("decode health of "+partner, err)
	}
	return h, true, nil
}

// PutPartnerHealth writes h if the stored state is still the one checked
// at prevChecked (zero: there is none), so that of two checks racing, one
// records the change and announces it. Losing the race is ErrConflict.
func (s *Store) PutPartnerHealth(ctx context.Context, h PartnerHealth, prevChecked time.Time) error {
	item := healthKey(h.Partner, healthStateSK)
	item[attrHealthy] = str(strconv.FormatBool(h.Healthy))
	item[attrAnnounced] = str(strconv.FormatBool(h.Announced))
	item[attrSince] = str(formatTime(h.Since))
	item[attrChecked] = str(formatTime(h.Checked))
	item[attrAuthFails] = num(int64(h.AuthFailures))
	for k, v := range map[string]string{attrKind: h.Kind, attrCode: h.Code, attrReason: h.Reason} {
		if v != "" {
			item[k] = str(v)
		}
	}
	in := &dynamodb.PutItemInput{TableName: &s.table, Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)")}
	if !prevChecked.IsZero() {
		in.ConditionExpression = aws.String("#c = :prev")
		in.ExpressionAttributeNames = map[string]string{"#c": attrChecked}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":prev": str(formatTime(prevChecked))}
	}
	writeMu.RLock()
	_, err := s.db.PutItem(ctx, in)
	writeMu.RUnlock()
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ErrConflict
	}
	if err != nil {
		return wrap("write health of "+h.Partner, err)
	}
	return nil
}

// ClaimNotice claims the notice key about partner (such as a credential's
// 14-day expiry warning), once: claimed is true when no notice of that key
// was published before, and the caller must publish it and then call
// MarkNotice. A claim whose publishing failed can be claimed again.
func (s *Store) ClaimNotice(ctx context.Context, partner, key string, now time.Time) (claimed bool, err error) {
	item := healthKey(partner, noticePrefix+key)
	item[attrPublished] = str("false")
	item[attrNoticeTime] = str(formatTime(now))
	writeMu.RLock()
	_, err = s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName: &s.table, Item: item,
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR #p = :f"),
		ExpressionAttributeNames:  map[string]string{"#p": attrPublished},
		ExpressionAttributeValues: map[string]types.AttributeValue{":f": str("false")},
	})
	writeMu.RUnlock()
	var ccf *types.ConditionalCheckFailedException
	switch {
	case errors.As(err, &ccf):
		return false, nil
	case err != nil:
		return false, wrap("claim notice "+key+" about "+partner, err)
	}
	return true, nil
}

// MarkNotice records that the notice key about partner is published.
func (s *Store) MarkNotice(ctx context.Context, partner, key string) error {
	writeMu.RLock()
	_, err := s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: &s.table, Key: healthKey(partner, noticePrefix+key),
		UpdateExpression:          aws.String("SET #p = :t"),
		ExpressionAttributeNames:  map[string]string{"#p": attrPublished},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": str("true")},
	})
	writeMu.RUnlock()
	if err != nil {
		return wrap("mark notice "+key+" about "+partner, err)
	}
	return nil
}
