package projections_test

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

// TestProfileViewIsTheThreeViewsInOne: the one-query profile says what the users, labels and
// wallet views say separately, for users with labels and coins, and with neither.
func TestProfileViewIsTheThreeViewsInOne(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		users := projections.NewUsersView(e.db, e.dialect)
		labels := projections.NewLabelsView(e.db, e.dialect)
		wallet := projections.NewWalletView(e.db, e.dialect)
		profiles := projections.NewProfileView(e.db, e.dialect)
		r := start(t, e.runtime(t, projections.Options{}, users, labels, wallet))
		ctx := context.Background()

		admin := eventstore.Metadata{ActorUID: newUID(), ActorRole: "admin"}
		rich, bare := newUID(), newUID()
		appendTo(t, e.store, rich, userMeta(rich), registered(rich, strings.ToLower(rich)+"@example.com", "rich"),
			domain.WalletCredited{Balance: domain.BalanceFree, Amount: 100, Reason: domain.WalletReasonSignupBonus})
		appendTo(t, e.store, rich, admin,
			labelAdded("email", "verified", domain.ScopePrivate), domain.LevelChanged{From: 0, To: 1},
			domain.LabelAdded{Key: "tier", Value: "gold", Scope: domain.ScopePrivate, Description: "paid"},
			domain.WalletCredited{Balance: domain.BalanceStandard, Amount: 40, Reason: "deposit"})
		appendTo(t, e.store, rich, userMeta(rich), labelAdded("email", "mine", domain.ScopePublic),
			domain.WalletDebited{Balance: domain.BalanceFree, Amount: 30, Reason: domain.WalletReasonSpend})
		res := appendTo(t, e.store, bare, userMeta(bare), registered(bare, strings.ToLower(bare)+"@example.com", ""))
		waitFor(t, r, res.LastPosition)

		for _, uid := range []string{rich, bare} {
			for range 2 { // the second time through the prepared statement
				got, err := profiles.ByUID(ctx, uid)
				if err != nil {
					t.Fatal(err)
				}
				u, err := users.ByUID(ctx, uid)
				if err != nil {
					t.Fatal(err)
				}
				ls, err := labels.ForUser(ctx, uid)
				if err != nil {
					t.Fatal(err)
				}
				bal, err := wallet.Balances(ctx, uid)
				if err != nil {
					t.Fatal(err)
				}
				if want := (projections.Profile{User: u, Labels: append([]projections.UserLabel{}, ls...), Wallet: bal}); !reflect.DeepEqual(got, want) {
					t.Errorf("profile of %s:\n%+v\nwant\n%+v", uid, got, want)
				}
			}
		}
		got, err := profiles.ByUID(ctx, rich)
		if err != nil || len(got.Labels) != 3 || got.Wallet.Free != 70 || got.Wallet.Standard != 40 {
			t.Errorf("rich profile: %+v, %v", got, err)
		}
		if _, err := profiles.ByUID(ctx, newUID()); !errors.Is(err, projections.ErrNotFound) {
			t.Errorf("unknown user: %v, want ErrNotFound", err)
		}
	})
}

// TestProfileCarriesItsStreamVersion: a view made WithStreamVersions reads, in the profile's
// statement, the version of the user's last event in the store, even one the read models have not
// applied yet (the session check relies on it); a plain view says 0.
func TestProfileCarriesItsStreamVersion(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		plain := projections.NewProfileView(e.db, e.dialect)
		versioned := plain.WithStreamVersions()
		if plain.ReadsStreamVersions() || !versioned.ReadsStreamVersions() {
			t.Fatal("ReadsStreamVersions does not tell the two views apart")
		}
		users := projections.NewUsersView(e.db, e.dialect)
		rt := e.runtime(t, projections.Options{}, users, projections.NewLabelsView(e.db, e.dialect), projections.NewWalletView(e.db, e.dialect))
		r := start(t, rt)
		ctx := context.Background()
		uid := newUID()
		res := appendTo(t, e.store, uid, userMeta(uid), registered(uid, strings.ToLower(uid)+"@example.com", ""))
		waitFor(t, r, res.LastPosition)
		for range 2 { // the second time through the prepared statement
			p, err := versioned.ByUID(ctx, uid)
			if err != nil || p.StreamVersion != 1 {
				t.Fatalf("versioned profile: version %d, %v; want 1", p.StreamVersion, err)
			}
			if p, err := plain.ByUID(ctx, uid); err != nil || p.StreamVersion != 0 {
				t.Fatalf("plain profile: version %d, %v; want 0", p.StreamVersion, err)
			}
		}
		rt.Stop() // the read models stay behind; the stream moves on
		appendTo(t, e.store, uid, userMeta(uid), labelAdded("email", "verified", domain.ScopePrivate), domain.LevelChanged{From: 0, To: 1})
		p, err := versioned.ByUID(ctx, uid)
		if err != nil || p.StreamVersion != 3 || p.User.Level != 0 {
			t.Fatalf("profile ahead of its read models: version %d, level %d, %v; want version 3, level 0", p.StreamVersion, p.User.Level, err)
		}
	})
}
