package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// eventJSON is an event as `ferry show --json` prints it.
type eventJSON struct {
	Seq     int              `json:"seq"`
	Type    domain.EventType `json:"type"`
	At      time.Time        `json:"at"`
	Payload domain.Payload   `json:"payload"`
}

func runShow(ctx context.Context, e *env, args []string) error {
	fs := newFlags("show", e.stderr)
	asJSON := fs.Bool("json", false, "print the state and events as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one transfer id")
	}
	st, err := e.store(ctx)
	if err != nil {
		return err
	}
	state, err := st.Load(ctx, pos[0])
	if err != nil {
		return fmt.Errorf("transfer %s: %w", pos[0], err)
	}
	events, err := allEvents(ctx, st, pos[0], 0)
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			State  domain.State `json:"state"`
			Events []eventJSON  `json:"events"`
		}{State: state}
		for _, ev := range events {
			out.Events = append(out.Events, eventJSON{Seq: ev.Seq, Type: ev.Type(), At: ev.At, Payload: ev.Payload})
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	fmt.Fprintf(e.stdout, "transfer %s  status %s  %d/%d chunks  %d bytes\n", state.ID, state.Status, state.ChunksSent, state.Request.Chunks, state.Size())
	for _, ev := range events {
		printEvent(e.stdout, ev)
	}
	return nil
}

// eventReader is what show and watch need of the store.
type eventReader interface {
	Events(ctx context.Context, id string, afterSeq, limit int) ([]domain.Event, error)
}

// allEvents reads every event after seq, page by page.
func allEvents(ctx context.Context, st eventReader, id string, after int) ([]domain.Event, error) {
	var out []domain.Event
	for {
		page, err := st.Events(ctx, id, after, 500)
		if err != nil {
			return nil, fmt.Errorf("events of %s: %w", id, err)
		}
		out = append(out, page...)
		if len(page) < 500 {
			return out, nil
		}
		after = page[len(page)-1].Seq
	}
}
