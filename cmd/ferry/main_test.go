package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

func runCLI(args ...string) (string, int) {
	var out bytes.Buffer
	code := run(context.Background(), args, func(string) string { return "" }, &out, &out)
	return out.String(), code
}

func TestUsageErrorsExit2(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "usage:"},
		{[]string{"frobnicate"}, `ferry: unknown command "frobnicate"`},
		{[]string{"show"}, "ferry: show: want exactly one transfer id"},
		{[]string{"show", "a", "b"}, "ferry: show: want exactly one transfer id"},
		{[]string{"history"}, "ferry: history: give --status, --sender, --recipient or --route"},
		{[]string{"history", "--status", "LOST"}, `ferry: history: unknown status "LOST"`},
		{[]string{"history", "--status", "failed", "--since", "yesterday"}, "ferry: history: --since:"},
		{[]string{"history", "--status", "failed", "--limit", "0"}, "ferry: history: --limit must be 1-1000"},
		{[]string{"history", "--bogus"}, "ferry: history: flag provided but not defined: -bogus"},
		{[]string{"send"}, "ferry: send: want exactly one file"},
		{[]string{"watch"}, "ferry: watch: want exactly one transfer id"},
		{[]string{"local", "extra"}, `ferry: local: unexpected argument "extra"`},
		{[]string{"replay", "01ID"}, "ferry: replay: --reason is required"},
		{[]string{"replay", "--reason", "x"}, "ferry: replay: give transfer ids, or --status FAILED"},
		{[]string{"replay", "01ID", "--status", "FAILED", "--reason", "x"}, "ferry: replay: give transfer ids or --status, not both"},
		{[]string{"replay", "--status", "DELIVERED", "--reason", "x"}, "ferry: replay: --status DELIVERED: only FAILED transfers can be replayed"},
		{[]string{"replay", "--status", "FAILED", "--max", "0", "--reason", "x"}, "ferry: replay: --max must be 1-10000"},
		{[]string{"replay", "--status", "FAILED", "--rate", "fast", "--reason", "x"}, "ferry: replay: --rate:"},
		{[]string{"replay", "--status", "FAILED", "--since", "last week", "--reason", "x"}, "ferry: replay: --since:"},
		{[]string{"replay", "01ID", "--code", "403", "--reason", "x"}, "select transfers for a bulk replay"},
		{[]string{"cancel", "01ID"}, "ferry: cancel: --reason is required"},
		{[]string{"cancel", "--reason", "x"}, "ferry: cancel: give the ids"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, code := runCLI(tc.args...)
			if code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output %q lacks %q", out, tc.want)
			}
		})
	}
}

func TestFailureExits1(t *testing.T) {
	out, code := runCLI("send", "/nonexistent/file")
	if code != 1 || !strings.HasPrefix(out, "ferry: send: ") {
		t.Fatalf("exit %d, output %q; want 1 and a ferry: send: prefix", code, out)
	}
}

func TestHelpExits0(t *testing.T) {
	if out, code := runCLI("help"); code != 0 || !strings.Contains(out, "ferry history") {
		t.Fatalf("help: exit %d, output %q", code, out)
	}
}

func TestParseWhen(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"24h":                  now.Add(-24 * time.Hour),
		"90m":                  now.Add(-90 * time.Minute),
		"2026-11-01":           time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
		"2026-11-01T10:00:00Z": time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC),
	} {
		got, err := parseWhen(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseWhen("last week", now); err == nil {
		t.Error("parseWhen(last week) succeeded")
	}
}

func TestDescribe(t *testing.T) {
	at := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		p    domain.Payload
		want []string
	}{
		{domain.Requested{Route: "r", Sender: "a", Recipient: "b", Size: 10, Chunks: 1, Source: domain.Source{Bucket: "bk", Key: "k"}},
			[]string{"route=r", "sender=a", "recipient=b", "bytes=10", "chunks=1", "source=s3://bk/k"}},
		{domain.ChunkSent{Index: 2, Bytes: 5}, []string{"chunk=2", "bytes=5"}},
		{domain.ChunkSent{Index: 3, Bytes: 7, Held: true}, []string{"chunk=3", "bytes=7", "held=true"}},
		{domain.Delivered{Location: "s3://x/y"}, []string{"location=s3://x/y"}},
		{domain.Failed{Kind: domain.KindInvalid, Code: "NO_ROUTE", Message: "no route matches", Attempt: 1},
			[]string{"kind=invalid", "code=NO_ROUTE", "retryable=false", "attempt=1", `reason="no route matches"`}},
		{domain.Failed{Kind: domain.KindUnavailable, Retryable: true, Attempt: 2, NextAttemptAt: at, Message: "503"},
			[]string{"retryable=true", "next=2026-11-24T12:00:00Z"}},
	} {
		got := describe(domain.Event{Seq: 1, At: at, Payload: tc.p})
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("describe(%T) = %q, lacks %q", tc.p, got, w)
			}
		}
	}
}
