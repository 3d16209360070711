//go:build integration

package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ferryhq/ferry/domain"
	"github.com/ferryhq/ferry/store"
)

func TestAPIKeys(t *testing.T) {
	s, _ := newTable(t)
	ctx := context.Background()
	t0 := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)

	key, k, err := s.CreateAPIKey(ctx, "org-a", store.RolePartner, "org A's uploader", t0)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(key, "fry_") || len(key) != 4+52 || len(k.ID) != 16 || !strings.HasPrefix(strings.ToLower(k.ID), k.ID) {
		t.Fatalf("key %q, id %q: want fry_ and 52 characters, a 16-digit id", key, k.ID)
	}
	other, _, err := s.CreateAPIKey(ctx, "ops", store.RoleOperator, "", t0)
	if err != nil || other == key {
		t.Fatalf("second key %q, %v: want another key", other, err)
	}

	got, err := s.LookupAPIKey(ctx, key)
	if err != nil || got.Party != "org-a" || got.Role != store.RolePartner || got.ID != k.ID || !got.Created.Equal(t0) {
		t.Fatalf("LookupAPIKey = %+v, %v; want org-a's partner key %s", got, err, k.ID)
	}
	for _, bad := range []string{"", "fry_" + strings.Repeat("a", 52), key[:len(key)-1] + "x", "Bearer " + key} {
		_, err := s.LookupAPIKey(ctx, bad)
		if domain.KindOf(err) != domain.KindUnauthorized || (bad != "" && strings.Contains(err.Error(), bad)) {
			t.Errorf("LookupAPIKey(%q) = %v, want unauthorized, the key not echoed", bad, err)
		}
	}

	keys, err := s.APIKeys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("APIKeys = %v, %v; want 2", keys, err)
	}

	if err := s.RevokeAPIKey(ctx, k.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LookupAPIKey(ctx, key); domain.KindOf(err) != domain.KindUnauthorized || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("lookup of a revoked key = %v, want unauthorized, revoked", err)
	}
	if err := s.RevokeAPIKey(ctx, k.ID, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	keys, _ = s.APIKeys(ctx)
	for _, got := range keys {
		if got.ID == k.ID && !got.Revoked.Equal(t0.Add(time.Hour)) {
			t.Errorf("revoked at %s, want the first revocation's %s", got.Revoked, t0.Add(time.Hour))
		}
	}
	if _, err := s.LookupAPIKey(ctx, other); err != nil {
		t.Errorf("the other key stopped working: %v", err)
	}
	if err := s.RevokeAPIKey(ctx, "0123456789abcdef", t0); domain.KindOf(err) != domain.KindNotFound {
		t.Errorf("revoke of an unknown id = %v, want not found", err)
	}
	if err := s.RevokeAPIKey(ctx, "nothex", t0); domain.KindOf(err) != domain.KindInvalid {
		t.Errorf("revoke of a malformed id = %v, want invalid", err)
	}
}
