package domain

import "testing"

func TestIsSecretRef(t *testing.T) {
	for _, tt := range []struct {
		s    string
		want bool
	}{
		{"secret:ferry/mesh/X26ABC1", true},
		{"ssm:/ferry/mesh/url", true},
		{"secret:", true},
		{"ssm:", true},
		{"", false},
		{"password", false},
		{"secret", false},
		{"Secret:x", false},
		{"SSM:/x", false},
		{" secret:x", false},
		{"s3://bucket/key", false},
		{"https://msg.intspineservices.nhs.uk", false},
		{"my-secret:x", false},
	} {
		if got := IsSecretRef(tt.s); got != tt.want {
			t.Errorf("IsSecretRef(%q) = %t, want %t", tt.s, got, tt.want)
		}
	}
}
