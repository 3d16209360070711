package retry

import (
	"context"
	"log/slog"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
	"github.com/ferryhq/ferry/transport"
)

// Tracking: after a delivery that expects an acknowledgement (MESH), or of
// a source that wants one (a MESH inbox message landed elsewhere), advance
// schedules a "track" message. The handler then asks the destination's
// Tracker, or tells the source's Acknowledger, and records what it learns;
// until then it looks again every TrackInterval, for TrackFor after
// delivery.

// ScheduleTrack sends a message that asks, at at, whether delivered
// transfer id has been acknowledged (or acknowledges its source again).
func (q *Queue) ScheduleTrack(ctx context.Context, id string, version int, at time.Time) error {
	return q.schedule(ctx, Message{Kind: KindTrack, TransferID: id, Version: version, At: at})
}

// Tracker asks a destination whether the far end acknowledged a delivery.
type Tracker interface {
	Track(ctx context.Context, t domain.State) (Tracking, error)
}

// Tracking is what a Tracker learnt.
type Tracking = transport.Tracking

// Acknowledger confirms to a transfer's source that the file is safe.
type Acknowledger interface {
	Acknowledge(ctx context.Context, t domain.State) error
}

// DefaultTrackFor is how long after delivery an acknowledgement is looked
// for when Handler.TrackFor is zero: 5 days, MESH's inbox expiry.
const DefaultTrackFor = 5 * 24 * time.Hour

// track looks for the acknowledgement of a delivered transfer (or repeats
// the acknowledgement of its source) and records what it finds; otherwise
// it looks again later, until TrackFor has passed since delivery.
func (h *Handler) track(ctx context.Context, log *slog.Logger, st domain.State, msg Message) error {
	if st.Version != msg.Version || st.Status != domain.StatusDelivered {
		log.InfoContext(ctx, "tracking no longer needed", "status", st.Status)
		return nil
	}
	now := h.Now()
	if now.Before(msg.At) {
		return h.Scheduler.ScheduleTrack(ctx, st.ID, st.Version, msg.At)
	}
	var cmd domain.Command
	var err error
	switch {
	case st.Request.AckSource:
		a, ok := h.Acknowledgers[st.Request.Source.Kind]
		if !ok {
			return domain.Errorf(domain.KindInvalid, "cannot acknowledge a %q source", st.Request.Source.Kind)
		}
		if err = a.Acknowledge(ctx, st); err == nil {
			cmd = domain.Acknowledge{By: "ferry", Ref: st.Request.Source.MessageID}
		}
	case st.Request.ExpectAck:
		t, ok := h.Trackers[st.Request.Destination.Type]
		if !ok {
			return domain.Errorf(domain.KindInvalid, "cannot track a %q destination", st.Request.Destination.Type)
		}
		var got Tracking
		if got, err = t.Track(ctx, st); err == nil {
			switch {
			case got.Failure != nil:
				cmd = domain.Fail{Err: got.Failure}
			case got.Acknowledged:
				cmd = domain.Acknowledge{By: got.By, Ref: st.Ref}
			}
		}
	default:
		return nil
	}
	if err != nil && !domain.KindOf(err).Retryable() {
		// Tracking refused for good (e.g. credentials): record it.
		cmd = domain.Fail{Err: &domain.Error{Kind: domain.KindOf(err), Code: domain.CodeOf(err), Message: err.Error()}}
	}
	if cmd == nil {
		set := h.settings()
		if now.Sub(st.Updated) > set.trackFor {
			log.WarnContext(ctx, "stopped looking for an acknowledgement", "deliveredAt", st.Updated)
			return nil
		}
		if err != nil {
			log.WarnContext(ctx, "tracking check failed; will look again", "error", err)
		}
		return h.Scheduler.ScheduleTrack(ctx, st.ID, st.Version, now.Add(set.trackInterval))
	}
	d, err := store.DecideAppend(ctx, h.Store, st, cmd, now)
	if err != nil {
		return err
	}
	log.InfoContext(ctx, "tracking recorded", "event", d.Events[0].Type(), "lostRace", d.Lost)
	return nil
}

// settings are the handler's tunables with every zero field set to its
// default: the one place retry applies its defaults.
type settings struct {
	trackInterval, trackFor time.Duration
}

func (h *Handler) settings() settings {
	s := settings{trackInterval: h.TrackInterval, trackFor: h.TrackFor}
	if s.trackInterval <= 0 {
		s.trackInterval = transport.DefaultTrackInterval
	}
	if s.trackFor <= 0 {
		s.trackFor = DefaultTrackFor
	}
	return s
}
