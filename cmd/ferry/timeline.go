package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// describe renders an event's details on one line for the timeline.
func describe(e domain.Event) string {
	var kv []string
	add := func(k string, v any) {
		if s := fmt.Sprint(v); s != "" && s != "0" {
			kv = append(kv, k+"="+s)
		}
	}
	switch p := e.Payload.(type) {
	case domain.Requested:
		add("route", p.Route)
		add("sender", p.Sender)
		add("recipient", p.Recipient)
		add("file", p.Filename)
		add("correlation", p.CorrelationID)
		kv = append(kv, fmt.Sprintf("bytes=%d", p.Size), fmt.Sprintf("chunks=%d", p.Chunks))
		add("source", "s3://"+p.Source.Bucket+"/"+p.Source.Key)
	case domain.Started:
		add("ref", short(p.Ref))
	case domain.ChunkSent:
		kv = append(kv, fmt.Sprintf("chunk=%d", p.Index), fmt.Sprintf("bytes=%d", p.Bytes))
		add("ref", short(p.Ref))
		if p.Held {
			kv = append(kv, "held=true") // stored with the next chunk's part
		}
	case domain.Delivered:
		add("location", p.Location)
	case domain.Failed:
		add("kind", p.Kind)
		add("code", p.Code)
		kv = append(kv, fmt.Sprintf("retryable=%t", p.Retryable), fmt.Sprintf("attempt=%d", p.Attempt))
		if !p.NextAttemptAt.IsZero() {
			add("next", p.NextAttemptAt.UTC().Format(time.RFC3339))
		}
		kv = append(kv, fmt.Sprintf("reason=%q", p.Message))
	case domain.Retried:
		add("attempt", p.Attempt)
	case domain.Acknowledged:
		add("by", p.By)
		add("ref", p.Ref)
	case domain.Replayed:
		add("actor", p.Actor)
		add("reason", p.Reason)
	case domain.Cancelled:
		add("actor", p.Actor)
		add("reason", p.Reason)
	}
	return strings.Join(kv, " ")
}

func short(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}

// printEvent writes one timeline line.
func printEvent(w io.Writer, e domain.Event) {
	fmt.Fprintf(w, "%s  v%-3d %-12s %s\n", e.At.UTC().Format("2006-01-02T15:04:05.000Z"), e.Seq, e.Type(), describe(e))
}
