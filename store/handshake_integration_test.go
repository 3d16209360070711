//go:build integration

package store_test

import (
	"context"
	"crypto/rand"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/oklog/ulid/v2"

	"github.com/ferryhq/ferry/store"
)

// newTable returns a Store on a fresh table in the emulator, deleted when
// the test ends, and the write counter of its client.
func newTable(t *testing.T) (*store.Store, *store.WriteCounter) {
	t.Helper()
	var wc store.WriteCounter
	db := dynamodb.NewFromConfig(awsConfig(t), func(o *dynamodb.Options) { o.APIOptions = append(o.APIOptions, wc.Middleware()) })
	table := "store-test-" + strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
	s := store.New(db, table)
	if err := s.CreateTable(context.Background(), tableDefinition(t)); err != nil {
		t.Fatalf("create table: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &table}); err != nil {
			t.Errorf("delete table %s: %v", table, err)
		}
	})
	return s, &wc
}

func TestClaimHandshake(t *testing.T) {
	s, wc := newTable(t)
	ctx := context.Background()
	day := 24 * time.Hour
	t0 := time.Date(2026, 12, 1, 9, 0, 0, 123456789, time.UTC)
	claim := func(mailbox string, now time.Time, wantClaimed bool, wantLast time.Time) {
		t.Helper()
		last, claimed, err := s.ClaimHandshake(ctx, mailbox, now, day)
		if err != nil {
			t.Fatalf("ClaimHandshake(%s, %s): %v", mailbox, now, err)
		}
		if claimed != wantClaimed || !last.Equal(wantLast) {
			t.Fatalf("ClaimHandshake(%s, %s) = %s, %t; want %s, %t", mailbox, now, last, claimed, wantLast, wantClaimed)
		}
	}
	wc.Reset()
	claim("X26ABC1", t0, true, t0)
	if n := wc.Count(); n != 1 {
		t.Errorf("a claim cost %d writes, want 1", n)
	}
	claim("X26ABC1", t0.Add(time.Hour), false, t0)
	claim("X26ABC1", t0.Add(day-time.Nanosecond), false, t0)
	claim("X26ABC2", t0.Add(time.Hour), true, t0.Add(time.Hour)) // each mailbox has its own
	t1 := t0.Add(day + time.Second)
	claim("X26ABC1", t1, true, t1)
	claim("X26ABC1", t1.Add(time.Minute), false, t1)

	t.Run("release lets the next claim through, and only the claim it names", func(t *testing.T) {
		if err := s.ReleaseHandshake(ctx, "X26ABC1", t0); err != nil { // an older claim: no effect
			t.Fatal(err)
		}
		claim("X26ABC1", t1.Add(2*time.Minute), false, t1)
		if err := s.ReleaseHandshake(ctx, "X26ABC1", t1); err != nil {
			t.Fatal(err)
		}
		t2 := t1.Add(3 * time.Minute)
		claim("X26ABC1", t2, true, t2)
		if err := s.ReleaseHandshake(ctx, "X26ZZZ9", t2); err != nil { // never claimed
			t.Fatal(err)
		}
	})

	t.Run("of concurrent claims exactly one wins", func(t *testing.T) {
		now := t0.Add(10 * day)
		var mu sync.Mutex
		won := 0
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				_, claimed, err := s.ClaimHandshake(ctx, "X26ABC3", now, day)
				if err != nil {
					t.Error(err)
				}
				if claimed {
					mu.Lock()
					won++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if won != 1 {
			t.Errorf("%d of 8 concurrent claims won, want 1", won)
		}
	})

}
