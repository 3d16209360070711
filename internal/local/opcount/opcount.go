// Package opcount counts what ferry local does, for benchmarks and the cost
// model (internal/cost): every AWS call by service and operation, the
// EventBridge entries put, and each function's invocations, their
// durations and batch sizes.
//
// A Counter's Middleware is added to the AWS configuration every client of
// ferry local is made from, the handlers' and the event source mappings'
// alike; its Handlers wrap the handlers the mappings invoke. Snapshot
// returns the counts as a JSON-ready Stats.
package opcount

import (
	"context"
	"sort"
	"strconv"
	"sync"
	"time"

	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/smithy-go/middleware"
)

// Counter counts calls and invocations. The zero value is ready to use and
// it is safe for concurrent use.
type Counter struct {
	mu        sync.Mutex
	calls     map[string]int64
	entries   int64
	functions map[string]*Function
}

// Function is what a Counter knows of one function's invocations.
type Function struct {
	// Invocations is how many times the handler was invoked.
	Invocations int64 `json:"invocations"`
	// Records is the total of the batches' sizes (records or messages).
	Records int64 `json:"records"`
	// MaxBatch is the largest batch.
	MaxBatch int `json:"maxBatch"`
	// Seconds is the handler's total run time, the basis of Lambda's
	// GB-seconds.
	Seconds float64 `json:"seconds"`
	// Batches counts the invocations by batch size ("1", "2", …).
	Batches map[string]int64 `json:"batches,omitempty"`
}

// Stats is a snapshot of a Counter.
type Stats struct {
	// Calls counts AWS calls by "Service.Operation", e.g. "S3.GetObject",
	// "DynamoDB Streams.GetRecords", "EventBridge.PutEvents". A call is
	// counted once as the client makes it, whatever its outcome; the SDK's
	// retries of it are not counted again.
	Calls map[string]int64 `json:"calls"`
	// EventBridgeEntries is the total of the entries of the PutEvents calls.
	EventBridgeEntries int64 `json:"eventBridgeEntries"`
	// Functions are the invocations by function (handler name).
	Functions map[string]Function `json:"functions"`
}

// Middleware returns an APIOptions entry that counts a client's calls.
func (c *Counter) Middleware() func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ferryOpCounter",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				var entries int64
				if pe, ok := in.Parameters.(*eventbridge.PutEventsInput); ok {
					entries = int64(len(pe.Entries))
				}
				c.call(awsmiddleware.GetServiceID(ctx)+"."+awsmiddleware.GetOperationName(ctx), entries)
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}

func (c *Counter) call(op string, entries int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int64{}
	}
	c.calls[op]++
	c.entries += entries
}

// Invoked records one invocation of function with a batch of size records
// that ran for d.
func (c *Counter) Invoked(function string, size int, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.functions == nil {
		c.functions = map[string]*Function{}
	}
	f := c.functions[function]
	if f == nil {
		f = &Function{Batches: map[string]int64{}}
		c.functions[function] = f
	}
	f.Invocations++
	f.Records += int64(size)
	f.MaxBatch = max(f.MaxBatch, size)
	f.Seconds += d.Seconds()
	f.Batches[strconv.Itoa(size)]++
}

// Handler wraps h so that each invocation is recorded as function's, its
// batch size the number of records size returns for its input.
func Handler[In, Out any](c *Counter, function string, size func(In) int, h func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	return func(ctx context.Context, in In) (Out, error) {
		start := time.Now()
		defer func() { c.Invoked(function, size(in), time.Since(start)) }()
		return h(ctx, in)
	}
}

// Snapshot returns a copy of the counts.
func (c *Counter) Snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{Calls: map[string]int64{}, EventBridgeEntries: c.entries, Functions: map[string]Function{}}
	for k, v := range c.calls {
		s.Calls[k] = v
	}
	for k, f := range c.functions {
		cp := *f
		cp.Batches = map[string]int64{}
		for b, n := range f.Batches {
			cp.Batches[b] = n
		}
		s.Functions[k] = cp
	}
	return s
}

// Sub returns the counts of s that happened after base: every counter of s
// less base's. MaxBatch and Batches' keys stay s's.
func (s Stats) Sub(base Stats) Stats {
	d := Stats{Calls: map[string]int64{}, EventBridgeEntries: s.EventBridgeEntries - base.EventBridgeEntries, Functions: map[string]Function{}}
	for k, v := range s.Calls {
		if n := v - base.Calls[k]; n != 0 {
			d.Calls[k] = n
		}
	}
	for k, f := range s.Functions {
		b := base.Functions[k]
		g := Function{Invocations: f.Invocations - b.Invocations, Records: f.Records - b.Records, MaxBatch: f.MaxBatch,
			Seconds: f.Seconds - b.Seconds, Batches: map[string]int64{}}
		for size, n := range f.Batches {
			if m := n - b.Batches[size]; m != 0 {
				g.Batches[size] = m
			}
		}
		if g.Invocations != 0 {
			d.Functions[k] = g
		}
	}
	return d
}

// Ops returns the "Service.Operation" names of s's calls, sorted.
func (s Stats) Ops() []string {
	ops := make([]string, 0, len(s.Calls))
	for k := range s.Calls {
		ops = append(ops, k)
	}
	sort.Strings(ops)
	return ops
}
