package local

import (
	"reflect"
	"testing"
	"time"

	"github.com/ferryhq/ferry/internal/local/resources"
)

func TestCORSOf(t *testing.T) {
	tmpl := &resources.CORS{AllowOrigins: []string{"http://127.0.0.1:4574"}, AllowMethods: []string{"GET"}, MaxAge: time.Minute}
	t.Run("the console's actual origin is allowed besides the template's", func(t *testing.T) {
		got := corsOf(tmpl, "http://127.0.0.1:39211")
		if want := []string{"http://127.0.0.1:4574", "http://127.0.0.1:39211"}; !reflect.DeepEqual(got.AllowOrigins, want) {
			t.Errorf("AllowOrigins = %v, want %v", got.AllowOrigins, want)
		}
		if got.MaxAge != time.Minute || !reflect.DeepEqual(got.AllowMethods, []string{"GET"}) {
			t.Errorf("the template's settings were not kept: %+v", got)
		}
		if len(tmpl.AllowOrigins) != 1 {
			t.Errorf("the template's origins were changed: %v", tmpl.AllowOrigins)
		}
	})
	t.Run("no CORS in the template, none locally", func(t *testing.T) {
		if got := corsOf(nil, "http://127.0.0.1:4574"); got != nil {
			t.Errorf("got %+v, want nil", got)
		}
	})
}
