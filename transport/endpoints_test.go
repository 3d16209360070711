package transport_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/ferryhq/ferry/transport"
)

type testEndpoint struct {
	Host string `json:"host"`
	Port int    `json:"port"`
}

func (e testEndpoint) WithDefaults() testEndpoint {
	if e.Port == 0 {
		e.Port = 22
	}
	return e
}

func (e testEndpoint) Validate() error {
	if e.Host == "" {
		return errors.New("host is missing")
	}
	return nil
}

func TestParseEndpoints(t *testing.T) {
	eps, err := transport.ParseEndpoints[testEndpoint]("test", map[string]json.RawMessage{
		"a": json.RawMessage(`{"host": "a.example"}`),
		"b": json.RawMessage(`{"host": "b.example", "port": 2222}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	if eps["a"] != (testEndpoint{"a.example", 22}) || eps["b"] != (testEndpoint{"b.example", 2222}) {
		t.Errorf("endpoints = %+v, want defaults given and set fields kept", eps)
	}

	_, err = transport.ParseEndpoints[testEndpoint]("test", map[string]json.RawMessage{
		"no-host": json.RawMessage(`{}`),
		"typo":    json.RawMessage(`{"host": "h", "prot": 1}`),
		"":        json.RawMessage(`{"host": "h"}`),
		"fine":    json.RawMessage(`{"host": "h"}`),
	})
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) || len(joined.Unwrap()) != 3 {
		t.Fatalf("err = %v, want three problems joined", err)
	}
	for _, want := range []string{`test: endpoint "no-host": host is missing`, `test: endpoint "typo": json: unknown field "prot"`, "test: an endpoint has an empty name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
}
