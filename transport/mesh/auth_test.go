package mesh

import (
	"regexp"
	"testing"
	"time"
)

// The wanted values were computed once with NHS's mesh-client
// (mesh_client.AuthTokenGenerator.generate_token, version 5.0.2) with its
// clock fixed at 2024-03-07T09:05:42Z and the nonce and count below.
func TestAuthHeaderMatchesMESHClient(t *testing.T) {
	at := time.Date(2024, 3, 7, 9, 5, 42, 0, time.UTC)
	tests := []struct {
		name                          string
		mailbox, password, key, nonce string
		count                         int
		t                             time.Time
		want                          string
	}{
		{
			name: "sandbox mailbox", mailbox: "X26ABC1", password: "password", key: "TestKey",
			nonce: "4e2b1c0a-7d3f-4a9e-9b1c-2f6d8e0a1b3c", count: 1, t: at,
			want: "NHSMESH X26ABC1:4e2b1c0a-7d3f-4a9e-9b1c-2f6d8e0a1b3c:1:202403070905:dc56b00f362e382cf703c3663ae8b3493f19f81d17529527784488b4125a8d42",
		},
		{
			name: "password with a colon, larger count", mailbox: "X26HC005", password: "s3cr3t:pw", key: "BackBone",
			nonce: "00000000-0000-4000-8000-000000000000", count: 17, t: at,
			want: "NHSMESH X26HC005:00000000-0000-4000-8000-000000000000:17:202403070905:ce6c67f81216f036594a94be1fdd0cda3dc91ffbac8bb7918d503af4e66cff76",
		},
		{
			name: "lower-case mailbox is upper-cased", mailbox: "x26abc1", password: "password", key: "TestKey",
			nonce: "4e2b1c0a-7d3f-4a9e-9b1c-2f6d8e0a1b3c", count: 1, t: at,
			want: "NHSMESH X26ABC1:4e2b1c0a-7d3f-4a9e-9b1c-2f6d8e0a1b3c:1:202403070905:dc56b00f362e382cf703c3663ae8b3493f19f81d17529527784488b4125a8d42",
		},
		{
			name: "timestamp is taken in UTC", mailbox: "X26ABC1", password: "password", key: "TestKey",
			nonce: "4e2b1c0a-7d3f-4a9e-9b1c-2f6d8e0a1b3c", count: 1, t: at.In(time.FixedZone("UTC+5", 5*3600)),
			want: "NHSMESH X26ABC1:4e2b1c0a-7d3f-4a9e-9b1c-2f6d8e0a1b3c:1:202403070905:dc56b00f362e382cf703c3663ae8b3493f19f81d17529527784488b4125a8d42",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AuthHeader(tt.mailbox, tt.password, tt.key, tt.nonce, tt.count, tt.t)
			if got != tt.want {
				t.Errorf("AuthHeader() =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

func TestNonceIsFreshUUID(t *testing.T) {
	uuid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		n := newNonce()
		if !uuid.MatchString(n) {
			t.Fatalf("nonce %q is not a version-4 UUID", n)
		}
		if seen[n] {
			t.Fatalf("nonce %q repeated", n)
		}
		seen[n] = true
	}
}
