package memstore_test

import (
	"testing"

	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/store/storetest"
)

// TestContract holds the fake that handler tests use to the store contract
// that the DynamoDB store keeps in integration tests.
func TestContract(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		NewStore: func(*testing.T) storetest.Store { return memstore.New() },
	})
}
