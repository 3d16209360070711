package app

import (
	"testing"
	"time"

	"github.com/ferryhq/ferry/functions/advance"
)

func TestWithDefaultsBudget(t *testing.T) {
	if got := (Config{}).WithDefaults().Budget; got != advance.DefaultBudget {
		t.Errorf("empty config's budget = %+v, want advance.DefaultBudget %+v", got, advance.DefaultBudget)
	}
	c := Config{Budget: advance.Budget{MaxChunks: 3}}.WithDefaults()
	if want := (advance.Budget{MaxChunks: 3, MaxTime: advance.DefaultBudget.MaxTime}); c.Budget != want {
		t.Errorf("budget = %+v, want %+v (the set field kept)", c.Budget, want)
	}
	if d := Defaults(); d.Budget != (advance.Budget{MaxChunks: 8, MaxTime: 2 * time.Minute}) {
		t.Errorf("Defaults().Budget = %+v, want 8 chunks or 2 minutes", d.Budget)
	}
}
