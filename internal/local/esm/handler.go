package esm

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// StreamHandler is a DynamoDB stream-triggered Lambda handler, reporting
// failed records in BatchItemFailures by sequence number.
type StreamHandler func(context.Context, events.DynamoDBEvent) (events.DynamoDBEventResponse, error)

// SQSHandler is an SQS-triggered Lambda handler, reporting failed messages in
// BatchItemFailures by message ID.
type SQSHandler func(context.Context, events.SQSEvent) (events.SQSEventResponse, error)

// PanicError is the error an invocation fails with when the handler panics.
// A panic fails the whole batch, as an unhandled exception does in Lambda.
type PanicError struct {
	Value any
	Stack []byte
}

func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// invoke calls h with in the way the Lambda runtime would: with a Lambda
// context carrying a fresh request ID, and turning a panic into a
// *PanicError.
func invoke[In, Out any](ctx context.Context, h func(context.Context, In) (Out, error), in In) (out Out, err error) {
	ctx = lambdacontext.NewContext(ctx, &lambdacontext.LambdaContext{
		AwsRequestID: requestID(),
	})
	defer func() {
		if v := recover(); v != nil {
			err = &PanicError{Value: v, Stack: debug.Stack()}
		}
	}()
	return h(ctx, in)
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
}

// sleep waits for d or until ctx is done, reporting whether it waited the
// whole time.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// backoff returns the wait before retry n (from 0) of a failing AWS call:
// exponential from 100ms, capped at 5s.
func backoff(n int) time.Duration {
	d := 100 * time.Millisecond
	for ; n > 0 && d < 5*time.Second; n-- {
		d *= 2
	}
	return min(d, 5*time.Second)
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}
