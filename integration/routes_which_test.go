//go:build integration

package integration

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
)

// TestRoutesWhichAgreesWithIntake: one table of uploads drives both
// `ferry routes which` and real uploads to the local stack; for each, the
// route, destination and chunk plan it predicts, or the rejection code, is
// what intake then records.
func TestRoutesWhichAgreesWithIntake(t *testing.T) {
	s := uniq("which")
	cases := []struct {
		name, key string
		size      int64
		meta      map[string]string
		wantRoute string // "" when rejected
		wantCode  string
	}{
		{"to partner-a, three chunks", "outbound/" + s + "/a.bin", 12 << 20, map[string]string{"sender": s, "recipient": "partner-a"}, "to-partner-a", ""},
		{"to bench", "outbound/" + s + "/b.bin", 1000, map[string]string{"sender": s, "recipient": "bench"}, "bench", ""},
		{"discarded", "outbound/discard/" + s + ".bin", 10, map[string]string{"sender": s, "recipient": "nobody"}, "discard", ""},
		{"no route", "outbound/" + s + "/c.bin", 10, map[string]string{"sender": s, "recipient": "nobody"}, "", "NO_ROUTE"},
		{"missing sender", "outbound/" + s + "/d.bin", 10, map[string]string{"recipient": "partner-a"}, "", "MISSING_METADATA"},
		{"invalid sender", "outbound/" + s + "/e.bin", 10, map[string]string{"sender": "bad sender!", "recipient": "partner-a"}, "", "INVALID_METADATA"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"routes", "which", "--routes", stack.routes, "--bucket", stack.res.UploadBucket, "--key", c.key, "--size", strconv.FormatInt(c.size, 10), "--json"}
			for k, v := range c.meta {
				args = append(args, "--meta", k+"="+v)
			}
			out, code := stack.ferry(t, args...)
			var w struct {
				Route       string
				Destination domain.Destination
				ChunkSize   int64
				Chunks      int
				Skipped     []string
				Rejected    *struct{ Code, Message string }
			}
			// The JSON comes first; a rejection's exit message follows it.
			if err := json.NewDecoder(strings.NewReader(out)).Decode(&w); err != nil {
				t.Fatalf("ferry routes which (exit %d): not JSON: %v\n%s", code, err, out)
			}
			if w.Route != c.wantRoute || (w.Rejected == nil) != (c.wantCode == "") || (w.Rejected != nil && w.Rejected.Code != c.wantCode) || (code == 0) != (c.wantCode == "") {
				t.Fatalf("which = exit %d %+v, want route %q code %q", code, w, c.wantRoute, c.wantCode)
			}

			id, _ := stack.upload(t, c.key, c.size, c.meta)
			st := stack.waitFor(t, id, time.Minute, "decided", func(st domain.State) bool {
				return st.Version > 0 && (st.Request.Route != "" || st.Status == domain.StatusFailed)
			})
			if c.wantCode != "" {
				st = stack.waitFor(t, id, time.Minute, "failed", func(st domain.State) bool { return st.Status == domain.StatusFailed })
				if st.LastFailure == nil || st.LastFailure.Code != w.Rejected.Code {
					t.Errorf("intake recorded %+v, which predicted %s", st.LastFailure, w.Rejected.Code)
				}
				return
			}
			r := st.Request
			if r.Route != w.Route || r.Chunks != w.Chunks || r.ChunkSize != w.ChunkSize || r.Destination.Type != w.Destination.Type {
				t.Errorf("intake made route %s, %d chunks of %d to %s; which predicted %s, %d of %d to %s",
					r.Route, r.Chunks, r.ChunkSize, r.Destination.Type, w.Route, w.Chunks, w.ChunkSize, w.Destination.Type)
			}
			if c.name == "to partner-a, three chunks" && (w.Chunks != 3 || len(w.Skipped) == 0) {
				t.Errorf("which: %d chunks, skipped %v; want 3 and the routes before to-partner-a", w.Chunks, w.Skipped)
			}
		})
	}
}
