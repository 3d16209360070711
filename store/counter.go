package store

import (
	"context"
	"sync"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/smithy-go/middleware"
)

// WriteCounter counts the requests a DynamoDB client makes, for tests and
// benchmarks that check what an operation costs. Add its Middleware to the
// client's APIOptions. It counts calls as the client makes them, before
// sending and whatever their outcome (a failed conditional write costs a
// write too); the SDK's own retries of a call are not counted again. The zero
// value is ready to use and it is safe for concurrent use.
type WriteCounter struct {
	mu     sync.Mutex
	writes int64
	calls  map[string]int64
}

// Middleware returns an APIOptions entry for a dynamodb.Client
// (dynamodb.Options.APIOptions) that counts its requests.
func (c *WriteCounter) Middleware() func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ferryWriteCounter",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c.count(awsmiddleware.GetOperationName(ctx), writesOf(in.Parameters))
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}

// writesOf returns how many item writes a request asks for: one for
// PutItem, UpdateItem and DeleteItem, one per put or delete request of a
// BatchWriteItem, one per Put, Update or Delete of a TransactWriteItems.
func writesOf(params any) int64 {
	switch in := params.(type) {
	case *dynamodb.PutItemInput, *dynamodb.UpdateItemInput, *dynamodb.DeleteItemInput:
		return 1
	case *dynamodb.BatchWriteItemInput:
		var n int64
		for _, reqs := range in.RequestItems {
			n += int64(len(reqs))
		}
		return n
	case *dynamodb.TransactWriteItemsInput:
		var n int64
		for _, it := range in.TransactItems {
			if it.Put != nil || it.Update != nil || it.Delete != nil {
				n++
			}
		}
		return n
	}
	return 0
}

func (c *WriteCounter) count(op string, writes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int64{}
	}
	c.calls[op]++
	c.writes += writes
}

// Count returns the number of item writes requested since the counter was
// made or Reset.
func (c *WriteCounter) Count() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writes
}

// Calls returns how many calls of the named operation ("Query", "PutItem",
// …) were made since the counter was made or Reset, reads included.
func (c *WriteCounter) Calls(op string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[op]
}

// Reset sets every count to zero.
func (c *WriteCounter) Reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes = 0
	c.calls = nil
}
