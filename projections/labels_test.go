package projections_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

func labelAdded(key, value string, scope domain.LabelScope) domain.LabelAdded {
	return domain.LabelAdded{Key: key, Value: value, Scope: scope}
}

func labelsText(ls []projections.UserLabel) string {
	var parts []string
	for _, l := range ls {
		s := fmt.Sprintf("%s=%s/%s", l.Key, l.Value, l.Scope)
		if l.Description != "" {
			s += "(" + l.Description + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, " ")
}

func TestLabelsView(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		users := projections.NewUsersView(e.db, e.dialect)
		labels := projections.NewLabelsView(e.db, e.dialect)
		r := start(t, e.runtime(t, projections.Options{}, users, labels))
		ctx := context.Background()

		admin := eventstore.Metadata{ActorUID: newUID(), ActorRole: "admin"}
		alice, bob, carol := newUID(), newUID(), newUID()
		appendTo(t, e.store, alice, userMeta(alice), registered(alice, strings.ToLower(alice)+"@example.com", ""))
		appendTo(t, e.store, bob, userMeta(bob), registered(bob, strings.ToLower(bob)+"@example.com", ""))
		appendTo(t, e.store, carol, userMeta(carol), registered(carol, strings.ToLower(carol)+"@example.com", ""))
		appendTo(t, e.store, alice, admin,
			labelAdded("email", "verified", domain.ScopePrivate), domain.LevelChanged{From: 0, To: 1},
			labelAdded("phone", "pending", domain.ScopePrivate),
			domain.LabelAdded{Key: "tier", Value: "gold", Scope: domain.ScopePrivate, Description: "paid"})
		appendTo(t, e.store, alice, userMeta(alice),
			labelAdded("nickname", "ally", domain.ScopePublic), labelAdded("colour", "blue", domain.ScopePublic))
		appendTo(t, e.store, alice, admin,
			domain.LabelUpdated{Key: "phone", Value: "verified", Scope: domain.ScopePrivate}, domain.LevelChanged{From: 1, To: 2},
			domain.LabelUpdated{Key: "tier", Value: "silver", Scope: domain.ScopePrivate, Description: "paid"})
		appendTo(t, e.store, alice, userMeta(alice), domain.LabelRemoved{Key: "colour", Scope: domain.ScopePublic})
		appendTo(t, e.store, bob, admin, labelAdded("email", "verified", domain.ScopePrivate), domain.LevelChanged{From: 0, To: 1})
		res := appendTo(t, e.store, carol, userMeta(carol), labelAdded("email", "verified", domain.ScopePublic))
		waitFor(t, r, res.LastPosition)

		ls, err := labels.ForUser(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := labelsText(ls), "email=verified/private nickname=ally/public phone=verified/private tier=silver/private(paid)"; got != want {
			t.Errorf("alice's labels = %s, want %s", got, want)
		}
		if ls[0].UID != alice || ls[0].CreatedAt.IsZero() || ls[2].UpdatedAt.Before(ls[2].CreatedAt) {
			t.Errorf("label rows = %+v", ls[0])
		}
		if ls, err := labels.ForUser(ctx, newUID()); err != nil || len(ls) != 0 {
			t.Errorf("labels of nobody = %v, %v", ls, err)
		}

		u, err := users.ByUID(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if u.Level != 2 {
			t.Errorf("alice's level in the users view = %d, want 2", u.Level)
		}

		for _, tc := range []struct {
			f     projections.LabelFilter
			want  []string
			total int
		}{
			{f: projections.LabelFilter{Key: "email", Value: "verified"}, want: []string{carol, bob, alice}, total: 3},
			{f: projections.LabelFilter{Key: "email", Value: "verified", Scope: "private"}, want: []string{bob, alice}, total: 2},
			{f: projections.LabelFilter{Key: "email", Value: "verified", Limit: 1, Page: 2}, want: []string{bob}, total: 3},
			{f: projections.LabelFilter{Key: "email", Value: "verified", Limit: 2, Page: 3}, want: []string{}, total: 3},
			{f: projections.LabelFilter{Key: "phone"}, want: []string{alice}, total: 1},
			{f: projections.LabelFilter{Key: "colour"}, want: []string{}, total: 0},
		} {
			got, total, err := labels.Users(ctx, tc.f)
			if err != nil {
				t.Fatalf("%+v: %v", tc.f, err)
			}
			uids := []string{}
			for _, u := range got {
				uids = append(uids, u.UID)
			}
			if !reflect.DeepEqual(uids, tc.want) || total != tc.total {
				t.Errorf("Users(%+v) = %v, %d; want %v, %d", tc.f, uids, total, tc.want, tc.total)
			}
		}
		for _, f := range []projections.LabelFilter{{Value: "verified"}, {Key: "email", Scope: "secret"}, {Key: "email", Limit: 101}} {
			if _, _, err := labels.Users(ctx, f); !errors.Is(err, projections.ErrInvalidFilter) {
				t.Errorf("Users(%+v) = %v, want ErrInvalidFilter", f, err)
			}
		}

		keys, err := labels.Keys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := []projections.LabelCount{
			{Key: "email", Value: "verified", Scope: "private", Users: 2},
			{Key: "email", Value: "verified", Scope: "public", Users: 1},
			{Key: "nickname", Value: "ally", Scope: "public", Users: 1},
			{Key: "phone", Value: "verified", Scope: "private", Users: 1},
			{Key: "tier", Value: "silver", Scope: "private", Users: 1},
		}
		if !reflect.DeepEqual(keys, want) {
			t.Errorf("Keys =\n %+v\nwant\n %+v", keys, want)
		}

		// A rebuild from position 0 gives the same labels.
		if err := r.Rebuild(ctx, projections.LabelsProjector); err != nil {
			t.Fatal(err)
		}
		after, err := labels.ForUser(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(after, ls) {
			t.Errorf("after a rebuild: %s, want %s", labelsText(after), labelsText(ls))
		}
	})
}

// A label event the domain never records (a second LabelAdded of one label) stops the projector
// at that event instead of leaving the read model wrong; the events before it are kept.
func TestLabelsViewStopsAtAnImpossibleEvent(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		labels := projections.NewLabelsView(e.db, e.dialect)
		r := start(t, e.runtime(t, projections.Options{}, labels))
		ctx := context.Background()
		uid := newUID()
		good := appendTo(t, e.store, uid, userMeta(uid), registered(uid, strings.ToLower(uid)+"@example.com", ""),
			labelAdded("nickname", "ally", domain.ScopePublic))
		bad := appendTo(t, e.store, uid, userMeta(uid), labelAdded("nickname", "bob", domain.ScopePublic))
		waitFor(t, r, good.LastPosition)
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			st, err := r.Status(ctx)
			if err == nil && len(st) == 1 && st[0].LastError != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the projector reports no error: %+v, %v", st, err)
			}
		}
		ls, err := labels.ForUser(ctx, uid)
		if err != nil || labelsText(ls) != "nickname=ally/public" {
			t.Errorf("labels = %s, %v; want the first one kept", labelsText(ls), err)
		}
		wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		if err := r.WaitFor(wctx, bad.LastPosition); err == nil {
			t.Error("the projector went past an impossible event")
		}
	})
}

// A closed account's labels leave with it, whether they were added in the same batch or earlier;
// the other users' labels stay.
func TestLabelsLeaveWithAClosedAccount(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		labels := projections.NewLabelsView(e.db, e.dialect)
		r := start(t, e.runtime(t, projections.Options{}, labels))
		ctx := context.Background()
		alice, bob, carol := newUID(), newUID(), newUID()
		for _, uid := range []string{alice, bob, carol} {
			appendTo(t, e.store, uid, userMeta(uid), registered(uid, strings.ToLower(uid)+"@example.com", ""),
				labelAdded("email", "verified", domain.ScopePrivate))
		}
		waitFor(t, r, appendTo(t, e.store, alice, userMeta(alice), labelAdded("phone", "verified", domain.ScopePrivate)).LastPosition)
		// Alice's labels were committed before; bob's closure comes in the batch of his new label.
		appendTo(t, e.store, alice, userMeta(alice), domain.AccountClosed{Email: strings.ToLower(alice) + "@example.com"})
		res := appendTo(t, e.store, bob, userMeta(bob), labelAdded("tier", "gold", domain.ScopePublic),
			domain.AccountClosed{Email: strings.ToLower(bob) + "@example.com"})
		waitFor(t, r, res.LastPosition)
		for uid, want := range map[string]string{alice: "", bob: "", carol: "email=verified/private"} {
			if ls, err := labels.ForUser(ctx, uid); err != nil || labelsText(ls) != want {
				t.Errorf("labels of %s = %q, %v; want %q", uid, labelsText(ls), err, want)
			}
		}
		keys, err := labels.Keys(ctx)
		if err != nil || len(keys) != 1 || keys[0].Users != 1 {
			t.Errorf("Keys = %+v, %v; want email=verified held by carol alone", keys, err)
		}
	})
}
