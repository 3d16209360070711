package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/schema"
	"github.com/ferryhq/ferry/store"
)

// apiError is a refusal: an HTTP status and one of the contract's codes.
type apiError struct {
	status        int
	code, message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

// errorOf is the one table from errors to the API's statuses and codes:
// its own refusals as they are, ferry's error kinds by kind. An internal
// error's message is not shown (it is logged).
func errorOf(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	msg := err.Error()
	var de *domain.Error
	if errors.As(err, &de) && de.Message != "" {
		msg = de.Message
	}
	switch domain.KindOf(err) {
	case domain.KindInvalid:
		return &apiError{http.StatusBadRequest, "bad_request", msg}
	case domain.KindNotFound:
		return &apiError{http.StatusNotFound, "not_found", msg}
	case domain.KindConflict:
		return &apiError{http.StatusConflict, "conflict", msg}
	case domain.KindUnauthorized:
		return &apiError{http.StatusUnauthorized, "unauthorized", msg}
	case domain.KindUnavailable:
		return &apiError{http.StatusServiceUnavailable, "unavailable", "a service ferry depends on is unavailable; try again"}
	default:
		return &apiError{http.StatusInternalServerError, "internal", "internal error"}
	}
}

func failure(e *apiError) events.APIGatewayV2HTTPResponse {
	type body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	var b body
	b.Error.Code, b.Error.Message = e.code, e.message
	return reply(e.status, b)
}

func reply(status int, v any) events.APIGatewayV2HTTPResponse {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"internal error"}}`)
	}
	return events.APIGatewayV2HTTPResponse{
		StatusCode: status,
		Headers:    map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store"},
		Body:       string(b),
	}
}

// transfer is a transfer's state as the API shows it.
type transfer struct {
	ID            string         `json:"id"`
	Version       int            `json:"version"`
	Status        domain.Status  `json:"status"`
	Route         string         `json:"route,omitempty"`
	Sender        string         `json:"sender,omitempty"`
	Recipient     string         `json:"recipient,omitempty"`
	Workflow      string         `json:"workflow,omitempty"`
	Filename      string         `json:"filename,omitempty"`
	Bytes         int64          `json:"bytes"`
	Chunks        int            `json:"chunks"`
	ChunksSent    int            `json:"chunksSent"`
	Attempt       int            `json:"attempt,omitempty"`
	Location      string         `json:"location,omitempty"`
	LastFailure   *failureDetail `json:"lastFailure,omitempty"`
	NextAttemptAt *time.Time     `json:"nextAttemptAt,omitempty"`
	Created       time.Time      `json:"created"`
	Updated       time.Time      `json:"updated"`
}

type failureDetail struct {
	Kind      string `json:"kind"`
	Code      string `json:"code,omitempty"`
	Message   string `json:"message"`
	Retryable bool   `json:"retryable"`
}

func transferOf(st domain.State) transfer {
	r := st.Request
	t := transfer{
		ID: st.ID, Version: st.Version, Status: st.Status, Route: r.Route, Sender: r.Sender, Recipient: r.Recipient,
		Workflow: r.Workflow, Filename: r.Filename, Bytes: st.Size(), Chunks: r.Chunks, ChunksSent: st.ChunksSent,
		Attempt: st.Attempt, Location: st.Location, Created: st.Created.UTC(), Updated: st.Updated.UTC(),
	}
	if f := st.LastFailure; f != nil {
		t.LastFailure = &failureDetail{Kind: string(f.Kind), Code: f.Code, Message: f.Message, Retryable: f.Retryable}
	}
	if !st.NextAttemptAt.IsZero() {
		at := st.NextAttemptAt.UTC()
		t.NextAttemptAt = &at
	}
	return t
}

// summary is one item of a transfer query.
type summary struct {
	ID         string        `json:"id"`
	Version    int           `json:"version"`
	Status     domain.Status `json:"status"`
	Route      string        `json:"route,omitempty"`
	Sender     string        `json:"sender,omitempty"`
	Recipient  string        `json:"recipient,omitempty"`
	Workflow   string        `json:"workflow,omitempty"`
	Filename   string        `json:"filename,omitempty"`
	Bytes      int64         `json:"bytes"`
	Chunks     int           `json:"chunks"`
	ChunksSent int           `json:"chunksSent"`
	LastError  string        `json:"lastError,omitempty"`
	Created    time.Time     `json:"created"`
	Updated    time.Time     `json:"updated"`
}

func summaryOf(s store.Summary) summary {
	return summary{
		ID: s.ID, Version: s.Seq, Status: s.Status, Route: s.Route, Sender: s.Sender, Recipient: s.Recipient,
		Workflow: s.Workflow, Filename: s.Filename, Bytes: s.Size, Chunks: s.Chunks, ChunksSent: s.ChunksSent,
		LastError: s.LastError, Created: s.Created.UTC(), Updated: s.Updated.UTC(),
	}
}

type transferPage struct {
	Items  []summary `json:"items"`
	Cursor string    `json:"cursor,omitempty"`
}

type eventPage struct {
	Items []schema.Detail `json:"items"`
	Next  *int            `json:"next,omitempty"`
}
