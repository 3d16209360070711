package store

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/ferryhq/ferry/domain"
)

// dynamoAnswering returns a Store whose DynamoDB client (the real SDK, no
// retries) gets status and body, a DynamoDB JSON error, for every request.
func dynamoAnswering(t *testing.T, status int, body string) *Store {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	db := dynamodb.New(dynamodb.Options{
		Region:       "eu-west-2",
		BaseEndpoint: aws.String(srv.URL),
		Credentials:  aws.AnonymousCredentials{},
		Retryer:      aws.NopRetryer{},
	})
	return New(db, "transfers")
}

// TestErrorsFromDynamoDB sends each operation to a DynamoDB that answers with
// an error and checks the error the store returns: its kind and code come
// from awserr's one table, and only a lost condition is ErrConflict.
func TestErrorsFromDynamoDB(t *testing.T) {
	st, evs := testState(t)
	one := []domain.Event{{TransferID: "01HX", Seq: 3, At: evs[1].At.Add(time.Second), Payload: domain.Retried{Attempt: 2}}}
	two := append(one, domain.Event{TransferID: "01HX", Seq: 4, At: evs[1].At.Add(2 * time.Second), Payload: domain.Retried{Attempt: 3}})
	const dynamo = "com.amazonaws.dynamodb.v20120810#"
	tests := []struct {
		name         string
		op           func(*Store) error
		status       int
		body         string
		wantKind     domain.Kind
		wantCode     string
		wantConflict bool
	}{
		{"append one, condition failed", appendOf(st, one), 400,
			`{"__type":"` + dynamo + `ConditionalCheckFailedException","message":"The conditional request failed"}`,
			domain.KindConflict, "", true},
		{"append one, transaction conflict", appendOf(st, one), 400,
			`{"__type":"` + dynamo + `TransactionConflictException","message":"Transaction is ongoing for the item"}`,
			domain.KindUnavailable, "TransactionConflictException", false},
		{"append one, throttled", appendOf(st, one), 400,
			`{"__type":"` + dynamo + `ProvisionedThroughputExceededException","message":"slow down"}`,
			domain.KindUnavailable, "ProvisionedThroughputExceededException", false},
		{"append one, invalid", appendOf(st, one), 400,
			`{"__type":"com.amazon.coral.validate#ValidationException","message":"Item size has exceeded the maximum allowed size"}`,
			domain.KindInvalid, "ValidationException", false},
		{"append one, server error without a body", appendOf(st, one), 500, ``,
			domain.KindUnavailable, "UnknownError", false}, // the JSON protocol names an empty error body so
		{"append two, a condition failed", appendOf(st, two), 400,
			`{"__type":"` + dynamo + `TransactionCanceledException","message":"Transaction cancelled","CancellationReasons":[{"Code":"None"},{"Code":"ConditionalCheckFailed","Message":"The conditional request failed"}]}`,
			domain.KindConflict, "", true},
		{"append two, another transaction on an item", appendOf(st, two), 400,
			`{"__type":"` + dynamo + `TransactionCanceledException","message":"Transaction cancelled","CancellationReasons":[{"Code":"TransactionConflict","Message":"Transaction is ongoing for the item"},{"Code":"None"}]}`,
			domain.KindUnavailable, "TransactionCanceledException", false},
		{"append two, an item failed validation", appendOf(st, two), 400,
			`{"__type":"` + dynamo + `TransactionCanceledException","message":"Transaction cancelled","CancellationReasons":[{"Code":"ValidationError","Message":"Item size has exceeded the maximum allowed size"},{"Code":"None"}]}`,
			domain.KindInvalid, "TransactionCanceledException", false},
		{"load, no table", loadOf("01HX"), 400,
			`{"__type":"` + dynamo + `ResourceNotFoundException","message":"Requested resource not found"}`,
			domain.KindNotFound, "ResourceNotFoundException", false},
		{"load, refused credentials", loadOf("01HX"), 400,
			`{"__type":"com.amazon.coral.service#UnrecognizedClientException","message":"The security token included in the request is invalid."}`,
			domain.KindUnauthorized, "UnrecognizedClientException", false},
		{"load, throttled", loadOf("01HX"), 400,
			`{"__type":"` + dynamo + `ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}`,
			domain.KindUnavailable, "ThrottlingException", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.op(dynamoAnswering(t, tt.status, tt.body))
			if err == nil {
				t.Fatal("err = nil, want an error")
			}
			if got := errors.Is(err, ErrConflict); got != tt.wantConflict {
				t.Errorf("errors.Is(%v, ErrConflict) = %t, want %t", err, got, tt.wantConflict)
			}
			if got := domain.KindOf(err); got != tt.wantKind {
				t.Errorf("kind of %v = %s, want %s", err, got, tt.wantKind)
			}
			if !tt.wantConflict {
				if got := domain.CodeOf(err); got != tt.wantCode {
					t.Errorf("code of %v = %q, want %q", err, got, tt.wantCode)
				}
				var de *domain.Error
				if !errors.As(err, &de) || de.Err == nil {
					t.Errorf("err = %v, want a *domain.Error wrapping the SDK's error", err)
				}
			}
		})
	}
}

func appendOf(prev domain.State, events []domain.Event) func(*Store) error {
	return func(s *Store) error {
		_, err := s.Append(context.Background(), prev, events...)
		return err
	}
}

func loadOf(id string) func(*Store) error {
	return func(s *Store) error {
		_, err := s.Load(context.Background(), id)
		return err
	}
}
