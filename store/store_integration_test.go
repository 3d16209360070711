//go:build integration

package store_test

import (
	"context"
	"crypto/rand"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/oklog/ulid/v2"

	"github.com/ferryhq/ferry/internal/local/resources"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/store/storetest"
)

// awsConfig returns the SDK configuration for the emulator at
// FERRY_AWS_ENDPOINT (moto server), failing the test if it is not set.
func awsConfig(t *testing.T) aws.Config {
	t.Helper()
	endpoint := os.Getenv("FERRY_AWS_ENDPOINT")
	if endpoint == "" {
		t.Fatal("FERRY_AWS_ENDPOINT is not set: start the DynamoDB emulator (moto server) and set it to its URL")
	}
	return aws.Config{
		Region:       "us-east-1",
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
		BaseEndpoint: aws.String(endpoint),
	}
}

// tableDefinition returns the table as infra/template.yaml defines it.
func tableDefinition(t *testing.T) dynamodb.CreateTableInput {
	t.Helper()
	def, err := resources.Template("us-east-1")
	if err != nil {
		t.Fatalf("read the template: %v", err)
	}
	return *def.Table.Input
}

func TestStore(t *testing.T) {
	cfg := awsConfig(t)
	newStore := func(t *testing.T, opts ...func(*dynamodb.Options)) *store.Store {
		t.Helper()
		db := dynamodb.NewFromConfig(cfg, opts...)
		table := "store-test-" + strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
		s := store.New(db, table)
		if err := s.CreateTable(context.Background(), tableDefinition(t)); err != nil {
			t.Fatalf("create table: %v", err)
		}
		if err := s.CreateTable(context.Background(), tableDefinition(t)); err != nil {
			t.Fatalf("create table again: %v", err)
		}
		t.Cleanup(func() {
			if _, err := db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &table}); err != nil {
				t.Errorf("delete table %s: %v", table, err)
			}
		})
		return s
	}
	t.Run("contract", func(t *testing.T) {
		storetest.Run(t, storetest.Harness{
			NewStore: func(t *testing.T) storetest.Store { return newStore(t) },
		})
	})
	t.Run("dynamodb", func(t *testing.T) {
		storetest.RunDynamoDB(t, storetest.DynamoDBHarness{
			NewStore: newStore,
			Streams: func(t *testing.T) *dynamodbstreams.Client {
				return dynamodbstreams.NewFromConfig(cfg)
			},
		})
	})
}
