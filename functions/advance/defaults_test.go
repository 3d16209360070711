package advance

import (
	"testing"
	"time"
)

func TestBudgetWithDefaults(t *testing.T) {
	for _, tt := range []struct {
		name    string
		in, out Budget
	}{
		{"zero is the default", Budget{}, DefaultBudget},
		{"set fields are kept", Budget{MaxChunks: 2, MaxTime: time.Second}, Budget{MaxChunks: 2, MaxTime: time.Second}},
		{"only the zero field is filled", Budget{MaxChunks: 3}, Budget{MaxChunks: 3, MaxTime: DefaultBudget.MaxTime}},
		{"negative counts as zero", Budget{MaxChunks: -1, MaxTime: -time.Second}, DefaultBudget},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.WithDefaults(); got != tt.out {
				t.Errorf("%+v.WithDefaults() = %+v, want %+v", tt.in, got, tt.out)
			}
		})
	}
	if DefaultBudget != (Budget{MaxChunks: 8, MaxTime: 2 * time.Minute}) {
		t.Errorf("DefaultBudget = %+v, want 8 chunks or 2 minutes (the documented default)", DefaultBudget)
	}
}
