package api

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestPartPlan(t *testing.T) {
	const mib, gib, tib = 1 << 20, 1 << 30, 1 << 40
	ptr := func(n int64) *int64 { return &n }
	for _, c := range []struct {
		name      string
		size      int64
		want      *int64
		partSize  int64
		partCount int
		refused   string
	}{
		{name: "an empty file is one part", size: 0, partSize: 64 * mib, partCount: 1},
		{name: "just under a part", size: 64*mib - 1, partSize: 64 * mib, partCount: 1},
		{name: "just over a part", size: 64*mib + 1, partSize: 64 * mib, partCount: 2},
		{name: "6 GiB in 64 MiB parts", size: 6 * gib, partSize: 64 * mib, partCount: 96},
		{name: "625 GiB still fits 64 MiB parts", size: 625 * gib, partSize: 64 * mib, partCount: 10000},
		{name: "1 TiB needs larger parts", size: tib, partSize: 105 * mib, partCount: 9987},
		{name: "5 TiB in the least whole MiB", size: 5 * tib, partSize: 525 * mib, partCount: 9987},
		{name: "the caller's part size", size: 20 * mib, want: ptr(8 * mib), partSize: 8 * mib, partCount: 3},
		{name: "a part under 5 MiB", size: 20 * mib, want: ptr(5*mib - 1), refused: "partSize: want"},
		{name: "a part over 5 GiB", size: 20 * gib, want: ptr(5*gib + 1), refused: "partSize: want"},
		{name: "too many parts", size: 100 * gib, want: ptr(5 * mib), refused: "20480 parts"},
	} {
		t.Run(c.name, func(t *testing.T) {
			size, count, err := partPlan(c.size, c.want)
			if c.refused != "" {
				if err == nil || !strings.Contains(err.Error(), c.refused) {
					t.Fatalf("partPlan(%d) = %d × %d, %v; want refused with %q", c.size, size, count, err, c.refused)
				}
				return
			}
			if err != nil || size != c.partSize || count != c.partCount {
				t.Errorf("partPlan(%d) = %d × %d, %v; want %d × %d", c.size, size, count, err, c.partSize, c.partCount)
			}
		})
	}
}

// TestPartPlanKeepsToS3sLimits: for any size S3 stores, the default plan
// covers the file in at most 10,000 parts of 5 MiB to 5 GiB, with no part
// to spare.
func TestPartPlanKeepsToS3sLimits(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		size := rapid.Int64Range(0, MaxMultipartUpload).Draw(t, "size")
		partSize, count, err := partPlan(size, nil)
		if err != nil {
			t.Fatalf("partPlan(%d): %v", size, err)
		}
		if partSize < MinPartSize || partSize > MaxPartSize || partSize%(1<<20) != 0 {
			t.Fatalf("part size %d is not a whole MiB in 5 MiB-5 GiB", partSize)
		}
		if count < 1 || count > MaxParts {
			t.Fatalf("%d parts", count)
		}
		if int64(count)*partSize < size || (count > 1 && int64(count-1)*partSize >= size) {
			t.Fatalf("%d parts of %d for %d bytes", count, partSize, size)
		}
	})
}

// TestUploadRefusals: what POST /uploads refuses, before it signs or
// begins anything (the handler here has no S3).
func TestUploadRefusals(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		body   string
		status int
		code   string
		names  string
	}{
		{`{"recipient":"org-b","filename":"a.csv","size":5497558138881}`, 413, "payload_too_large", "5 TiB"},
		{`{"recipient":"org-b","filename":"a.csv","size":10,"partSize":1024}`, 400, "bad_request", "partSize"},
		{`{"recipient":"org-b","filename":"a.csv","size":107374182400,"partSize":5242880}`, 400, "bad_request", "10000"},
		{`{"recipient":"org-z","filename":"a.csv","size":6442450944}`, 422, "unroutable", "no route"},
	} {
		resp := f.call(t, &orgA, "POST", "/uploads", c.body)
		if resp.StatusCode != c.status || errorCode(t, resp) != c.code || !strings.Contains(resp.Body, c.names) {
			t.Errorf("POST /uploads %s = %d %s, want %d %s naming %q", c.body, resp.StatusCode, resp.Body, c.status, c.code, c.names)
		}
	}
	for _, c := range []struct{ method, target, body, names string }{
		{"GET", "/uploads/not-an-id/parts", "", "id"},
		{"GET", "/uploads/" + idAB + "/parts?count=101", "", "count"},
		{"GET", "/uploads/" + idAB + "/parts?colour=red", "", "colour"},
		{"POST", "/uploads/" + idAB + "/complete", `{"parts":[]}`, "parts"},
		{"POST", "/uploads/" + idAB + "/complete", `{"parts":[{"number":0,"etag":"x"}]}`, "parts[0]"},
		{"POST", "/uploads/" + idAB + "/complete", `{"parts":[{"number":1}],"x":1}`, "body"},
		{"DELETE", "/uploads/not-an-id", "", "id"},
	} {
		resp := f.call(t, &orgA, c.method, c.target, c.body)
		if resp.StatusCode != 400 || errorCode(t, resp) != "bad_request" || !strings.Contains(resp.Body, c.names) {
			t.Errorf("%s %s %s = %d %s, want 400 naming %q", c.method, c.target, c.body, resp.StatusCode, resp.Body, c.names)
		}
	}
}
