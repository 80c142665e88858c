package authz_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/authz"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/sqlite"
)

// Two replicas, each with its own store handle, policy stream and engine, over one database: a
// restriction and a permission added on one are applied by the other's engine as it follows the
// stream, without being told.
func TestEngineFollowsChangesOfOtherReplicas(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "idlog.db")
	open := func() eventstore.Store {
		s, err := sqlite.Open(context.Background(), sqlite.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	key := make([]byte, auth.KeySize)
	sealer, _ := auth.NewSealer(key)
	reg := domain.NewEventRegistry()
	writer := commands.NewAccessPolicyHandler(commands.NewPolicyStream(open(), reg, nil), sealer)
	follower := authz.NewEngine(authz.Options{Source: commands.NewPolicyStream(open(), reg, nil), RefreshInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go follower.Run(ctx)

	admin := commands.Meta{ActorUID: "ID00000000AA", ActorRole: "admin"}
	if _, err := writer.CreateRestriction(ctx, commands.Meta{ActorUID: "ID00000000BB", ActorRole: "member"},
		domain.Restriction{Category: "blacklist", Scope: "ip", Value: "1.2.3.4"}); err != commands.ErrNotPermitted {
		t.Fatalf("a member changed the policy: %v", err)
	}
	if _, err := writer.CreateRestriction(ctx, admin, domain.Restriction{Category: "blacklist", Scope: "ip", Value: "1.2.3.4"}); err != nil {
		t.Fatal(err)
	}
	if _, err := writer.CreatePermission(ctx, admin, domain.Permission{Role: "member", Verb: "GET", Path: "api", Action: "ACCEPT"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, refused := follower.Restrict(netip.MustParseAddr("1.2.3.4"), "api/x")
		if refused && follower.Rules().Permit("member", "GET", "api/x").Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other replica's engine never applied the change")
		}
	}
	if v := follower.Rules().Version(); v != 2 {
		t.Errorf("follower at version %d, want 2", v)
	}
}
