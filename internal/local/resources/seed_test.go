package resources

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestReadSeed(t *testing.T) {
	dir := t.TempDir()
	pem := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(pem, []byte("-----BEGIN CERTIFICATE-----"), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(body string) string {
		p := filepath.Join(dir, "seed.json")
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	env := map[string]string{"PORT": "8700", "CA": pem}
	getenv := func(k string) string { return env[k] }

	seed, err := ReadSeed(write(`{"parameters":{"/url":"https://localhost:${PORT}"},"secrets":{"ca":"@${CA}"}}`), getenv)
	if err != nil {
		t.Fatal(err)
	}
	if got := seed.Parameters["/url"]; got != "https://localhost:8700" {
		t.Errorf("parameter = %q, want ${PORT} expanded", got)
	}
	if got := seed.Secrets["ca"]; got != "-----BEGIN CERTIFICATE-----" {
		t.Errorf("secret = %q, want the contents of the @file", got)
	}

	_, err = ReadSeed(write(`{"secrets":{"key":"${UNSET}"}}`), getenv)
	if err == nil || !strings.Contains(err.Error(), "secret key is empty") {
		t.Errorf("unset variable: err = %v, want it named as empty", err)
	}
	_, err = ReadSeed(write(`{"secrets":{"key":"@`+filepath.Join(dir, "missing")+`"}}`), getenv)
	if err == nil || !strings.Contains(err.Error(), "secret key") {
		t.Errorf("missing @file: err = %v, want it named", err)
	}
}
