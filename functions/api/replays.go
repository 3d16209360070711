package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/internal/ops"
	"github.com/ferryhq/ferry/store"
)

// Bulk replay through the API is bounded so that one call ends well within
// the function's timeout: at most maxBulkReplay transfers, bulkReplayPace
// apart (50 a second, the stream's pace to keep); call again with the same
// reason to go on.
const (
	maxBulkReplay  = 500
	bulkReplayPace = 20 * time.Millisecond
)

type bulkReplayRequest struct {
	Reason    string     `json:"reason"`
	Route     string     `json:"route"`
	Recipient string     `json:"recipient"`
	Code      string     `json:"code"`
	Since     *time.Time `json:"since"`
	Until     *time.Time `json:"until"`
	DryRun    bool       `json:"dryRun"`
	Max       *int       `json:"max"`
}

type bulkReplayResult struct {
	DryRun          bool     `json:"dryRun"`
	Replayed        []string `json:"replayed"`
	AlreadyReplayed int      `json:"alreadyReplayed"`
	Skipped         int      `json:"skipped"`
}

// replays is POST /replays: an operator replays the failed transfers a
// query selects, as `ferry replay --status FAILED` does.
func (h *Handler) replays(ctx context.Context, who Identity, body string) (events.APIGatewayV2HTTPResponse, error) {
	if who.Role != store.RoleOperator {
		return events.APIGatewayV2HTTPResponse{}, &apiError{http.StatusForbidden, "forbidden", "only operators replay in bulk"}
	}
	var in bulkReplayRequest
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return events.APIGatewayV2HTTPResponse{}, badRequest("body: " + err.Error())
	}
	if strings.TrimSpace(in.Reason) == "" {
		return events.APIGatewayV2HTTPResponse{}, badRequest("reason: required: say why; it names the run")
	}
	most := 100
	if in.Max != nil {
		most = *in.Max
	}
	if most < 1 || most > maxBulkReplay {
		return events.APIGatewayV2HTTPResponse{}, badRequest("max: want 1-500 (call again with the same reason to go on)")
	}
	q := store.Query{Status: domain.StatusFailed, Route: in.Route, Recipient: in.Recipient, Limit: store.MaxLimit}
	if in.Since != nil {
		q.Since = *in.Since
	}
	if in.Until != nil {
		q.Until = *in.Until
	}
	ids, err := ops.FailedIDs(ctx, h.Store, q)
	if err != nil {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	r := ops.BulkReplay{Store: h.Store, Actor: who.actor(), Reason: in.Reason, Code: in.Code, DryRun: in.DryRun, Max: most, Pace: bulkReplayPace, Now: h.Now}
	out := bulkReplayResult{DryRun: in.DryRun, Replayed: []string{}}
	t, err := r.Run(ctx, ids, func(prev domain.State) { out.Replayed = append(out.Replayed, prev.ID) })
	if err != nil && len(out.Replayed) == 0 {
		return events.APIGatewayV2HTTPResponse{}, err
	}
	if err != nil {
		h.Log.WarnContext(ctx, "bulk replay: some transfers were not replayed", "error", err)
	}
	out.AlreadyReplayed, out.Skipped = t.Already, t.Skipped+(t.Selected-t.Done-t.Already-t.Skipped)
	h.Log.InfoContext(ctx, "bulk replay", "party", who.Party, "keyId", who.KeyID, "reason", in.Reason, "dryRun", in.DryRun, "replayed", t.Done, "selected", t.Selected)
	return reply(http.StatusOK, out), nil
}
