package memstore

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Scheduled is one call of a Scheduler: wake transfer ID, at version
// Version, at At.
type Scheduled struct {
	ID      string
	Version int
	At      time.Time
}

// Scheduler records the retries and tracking checks a handler schedules,
// as the handlers' Scheduler interfaces (ScheduleRetry, ScheduleTrack) ask
// of the SQS delay queue. It is safe for concurrent use; the zero Scheduler
// is ready to use.
type Scheduler struct {
	// Err, when set, is returned by every call, which is recorded all the
	// same. Set it while no handler is running.
	Err error

	mu      sync.Mutex
	retries []Scheduled
	tracks  []Scheduled
}

// ScheduleRetry records a retry of id at version, due at at, and returns Err.
func (s *Scheduler) ScheduleRetry(_ context.Context, id string, version int, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.retries = append(s.retries, Scheduled{ID: id, Version: version, At: at})
	return s.Err
}

// ScheduleTrack records a tracking check of id at version, due at at, and
// returns Err.
func (s *Scheduler) ScheduleTrack(_ context.Context, id string, version int, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tracks = append(s.tracks, Scheduled{ID: id, Version: version, At: at})
	return s.Err
}

// Retries returns the ScheduleRetry calls, failing or not, in order (nil
// when there are none).
func (s *Scheduler) Retries() []Scheduled {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.retries)
}

// Tracks returns the ScheduleTrack calls, failing or not, in order (nil when
// there are none).
func (s *Scheduler) Tracks() []Scheduled {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tracks)
}
