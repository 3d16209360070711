package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/ferryhq/ferry/store"
)

// runKeys manages the HTTP API's keys: create (the key is shown once),
// list, revoke.
func runKeys(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usagef("give create, list or revoke")
	}
	sub, args := args[0], args[1:]
	fs := newFlags("keys "+sub, e.stderr)
	party := fs.String("party", "", "create: the sender or recipient the key acts as (required)")
	role := fs.String("role", store.RolePartner, "create: partner (its own transfers) or operator (all)")
	label := fs.String("label", "", "create: who holds the key, for people")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	st, err := e.store(ctx)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		if len(pos) > 0 || *party == "" {
			return usagef("keys create --party P [--role partner|operator] [--label L]")
		}
		key, k, err := st.CreateAPIKey(ctx, *party, *role, *label, time.Now())
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "key %s for %s (%s); it is shown this once: keep it in a secret store\n", k.ID, k.Party, k.Role)
		fmt.Fprintln(e.stdout, key)
		return nil
	case "list":
		keys, err := st.APIKeys(ctx)
		if err != nil {
			return err
		}
		w := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tPARTY\tROLE\tCREATED\tREVOKED\tLABEL")
		for _, k := range keys {
			revoked := "-"
			if !k.Revoked.IsZero() {
				revoked = k.Revoked.Format(time.RFC3339)
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Party, k.Role, k.Created.Format(time.RFC3339), revoked, k.Label)
		}
		return w.Flush()
	case "revoke":
		if len(pos) != 1 {
			return usagef("keys revoke ID (the ID ferry keys list shows)")
		}
		if err := st.RevokeAPIKey(ctx, pos[0], time.Now()); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "revoked %s; API Gateway may accept it for the authorizer cache's TTL (5 minutes) more\n", pos[0])
		return nil
	}
	return usagef("unknown keys command %q: give create, list or revoke", sub)
}
