package api

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/functions/intake"
	"github.com/ferryhq/ferry/internal/testkit/memstore"
	"github.com/ferryhq/ferry/store"
)

// fastIntake is S3 and intake at their quickest: storing a posted file
// makes its transfer at once, before POST /transfers appends it itself.
type fastIntake struct {
	store  *memstore.Store
	intake *intake.Handler
}

func (f fastIntake) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	party, id, ok := domain.ParsePostboxKey(aws.ToString(in.Key))
	if !ok {
		return nil, errors.New("not a postbox key: " + aws.ToString(in.Key))
	}
	obj := intake.Object{Bucket: aws.ToString(in.Bucket), Key: aws.ToString(in.Key), Size: aws.ToInt64(in.ContentLength), Metadata: in.Metadata, Sender: party, VersionID: "v1"}
	if _, err := store.DecideAppend(ctx, f.store, domain.State{ID: id}, f.intake.Command(obj), t0); err != nil {
		return nil, err
	}
	return &s3.PutObjectOutput{VersionId: aws.String("v1")}, nil
}

// TestPostWhenIntakeWins: when intake, woken by the stored file, makes the
// transfer before the API appends it, the caller still gets 202 with its
// Location, and there is one transfer; only a repeated request is a 200.
func TestPostWhenIntakeWins(t *testing.T) {
	f := newFixture(t)
	f.h.Objects = fastIntake{store: f.store, intake: f.h.Intake.(*intake.Handler)}
	resp := f.call(t, &orgA, "POST", "/transfers?recipient=org-b&filename=a.csv", "a,b\n1,2\n")
	if resp.StatusCode != 202 || !strings.HasPrefix(resp.Headers["Location"], "/transfers/") {
		t.Fatalf("POST /transfers = %d %v %s, want 202 with a Location", resp.StatusCode, resp.Headers, resp.Body)
	}
	id := strings.TrimPrefix(resp.Headers["Location"], "/transfers/")
	evs, err := f.store.Events(context.Background(), id, 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Type() != domain.TypeRequested {
		t.Errorf("events of %s = %v, %v; want intake's one Requested", id, evs, err)
	}
	if n := len(f.store.IDs()); n != 3 {
		t.Errorf("%d transfers, want the fixture's 2 and this one", n)
	}
}
