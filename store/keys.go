package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ferryhq/ferry/domain"
)

// Roles an API key may have.
const (
	// RolePartner may post files and see and act on the transfers its
	// party sent or receives.
	RolePartner = "partner"
	// RoleOperator may see and act on every transfer.
	RoleOperator = "operator"
)

// APIKey describes a key of the HTTP API. The key itself is never stored:
// only its SHA-256, whose first 16 hex digits are the key's ID.
type APIKey struct {
	ID      string // the first 16 hex digits of the key's SHA-256
	Party   string // the sender or recipient the key acts as
	Role    string // RolePartner or RoleOperator
	Label   string // who holds it, for people
	Created time.Time
	Revoked time.Time // zero while the key is valid
}

// KeyPrefix starts every API key, so a leaked one is recognisable (and
// secret scanners can be taught it).
const KeyPrefix = "fry_"

// Attribute names and key of the API key items: one partition holds them
// all (lookups are by full key, and there are few of them).
const (
	keysPK      = "APIKEYS"
	attrParty   = "party"
	attrRole    = "role"
	attrLabel   = "label"
	attrRevoked = "revoked"
)

// hashKey returns the hex SHA-256 of a key. A key is 32 random bytes, so a
// fast hash is enough: there is nothing to guess.
func hashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// CreateAPIKey stores a new key for party with role and returns it, the one
// time it is ever seen, with its description. The key is "fry_" and 52
// base32 characters (32 random bytes).
func (s *Store) CreateAPIKey(ctx context.Context, party, role, label string, now time.Time) (string, APIKey, error) {
	if party == "" || (role != RolePartner && role != RoleOperator) {
		return "", APIKey{}, domain.Errorf(domain.KindInvalid, "api key: want a party and a role (%s or %s)", RolePartner, RoleOperator)
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", APIKey{}, err
	}
	key := KeyPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	hash := hashKey(key)
	k := APIKey{ID: hash[:16], Party: party, Role: role, Label: label, Created: now.UTC()}
	item := map[string]types.AttributeValue{
		attrPK:      str(keysPK),
		attrSK:      str(hash),
		attrParty:   str(party),
		attrRole:    str(role),
		attrCreated: str(formatTime(k.Created)),
	}
	if label != "" {
		item[attrLabel] = str(label)
	}
	_, err := s.db.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:           &s.table,
		Item:                item,
		ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	if err != nil {
		return "", APIKey{}, wrap("create api key", err)
	}
	return key, k, nil
}

// LookupAPIKey returns the description of a valid key. A key that is not
// stored, or revoked, is domain.KindUnauthorized; the error never holds
// the key.
func (s *Store) LookupAPIKey(ctx context.Context, key string) (APIKey, error) {
	if !strings.HasPrefix(key, KeyPrefix) {
		return APIKey{}, domain.Errorf(domain.KindUnauthorized, "not a ferry API key")
	}
	out, err := s.db.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:      &s.table,
		Key:            map[string]types.AttributeValue{attrPK: str(keysPK), attrSK: str(hashKey(key))},
		ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return APIKey{}, wrap("look up api key", err)
	}
	if len(out.Item) == 0 {
		return APIKey{}, domain.Errorf(domain.KindUnauthorized, "unknown API key")
	}
	k, err := apiKeyOf(out.Item)
	if err != nil {
		return APIKey{}, err
	}
	if !k.Revoked.IsZero() {
		return APIKey{}, domain.Errorf(domain.KindUnauthorized, "API key %s was revoked", k.ID)
	}
	return k, nil
}

// APIKeys lists every key, revoked ones included, by ID.
func (s *Store) APIKeys(ctx context.Context) ([]APIKey, error) {
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": str(keysPK)},
	}
	var keys []APIKey
	for {
		out, err := s.db.Query(ctx, in)
		if err != nil {
			return nil, wrap("list api keys", err)
		}
		for _, item := range out.Items {
			k, err := apiKeyOf(item)
			if err != nil {
				return nil, err
			}
			keys = append(keys, k)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return keys, nil
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

// RevokeAPIKey marks the key with the given ID revoked at now; lookups of
// it fail from then on. An unknown ID is ErrNotFound. Revoking a revoked
// key keeps the first revocation's time.
func (s *Store) RevokeAPIKey(ctx context.Context, id string, now time.Time) error {
	if len(id) != 16 || strings.Trim(id, "0123456789abcdef") != "" {
		return domain.Errorf(domain.KindInvalid, "api key id %q: want the 16 hex digits ferry keys list shows", id)
	}
	out, err := s.db.Query(ctx, &dynamodb.QueryInput{
		TableName:              &s.table,
		KeyConditionExpression: aws.String("pk = :pk AND begins_with(sk, :id)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":pk": str(keysPK), ":id": str(id),
		},
	})
	if err != nil {
		return wrap("find api key", err)
	}
	if len(out.Items) == 0 {
		return fmt.Errorf("api key %s: %w", id, ErrNotFound)
	}
	_, err = s.db.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 &s.table,
		Key:                       map[string]types.AttributeValue{attrPK: out.Items[0][attrPK], attrSK: out.Items[0][attrSK]},
		UpdateExpression:          aws.String("SET revoked = if_not_exists(revoked, :now)"),
		ConditionExpression:       aws.String("attribute_exists(pk)"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": str(formatTime(now))},
	})
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return fmt.Errorf("api key %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return wrap("revoke api key "+id, err)
	}
	return nil
}

func apiKeyOf(item map[string]types.AttributeValue) (APIKey, error) {
	r := recordOf(item)
	k := APIKey{Party: r[attrParty], Role: r[attrRole], Label: r[attrLabel]}
	if sk := r[attrSK]; len(sk) >= 16 {
		k.ID = sk[:16]
	}
	var err error
	if k.Created, err = r.time(attrCreated); err != nil {
		return APIKey{}, err
	}
	if k.Revoked, err = r.time(attrRevoked); err != nil {
		return APIKey{}, err
	}
	return k, nil
}
