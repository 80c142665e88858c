package projections_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

// An administrator turns a user's sign-in off and closes accounts: the users view shows the flag,
// forgets closed users (so their email can come back as another user), the labels view drops their
// labels, and the activity log keeps every step as the administrator's, with the user as target.
func TestViewsFollowAdministrators(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		users, activity := e.views()
		labels := projections.NewLabelsView(e.db, e.dialect)
		r := start(t, e.runtime(t, projections.Options{}, users, activity, labels))
		ctx := context.Background()

		admin, alice, bob := newUID(), newUID(), newUID()
		adminMeta := eventstore.Metadata{ActorUID: admin, ActorRole: "admin", IP: "198.51.100.1"}
		appendTo(t, e.store, admin, userMeta(admin), registered(admin, "admin@example.com", ""))
		appendTo(t, e.store, alice, userMeta(alice), registered(alice, "alice@example.com", "alice"), domain.OTPEnabled{Step: 3})
		appendTo(t, e.store, alice, adminMeta, labelAdded("kyc", "verified", domain.ScopePrivate))
		appendTo(t, e.store, bob, userMeta(bob), registered(bob, "bob@example.com", "bob"))
		last := appendTo(t, e.store, bob, adminMeta, domain.LoginDisabled{})
		waitFor(t, r, last.LastPosition)

		if u, err := users.ByUID(ctx, bob); err != nil || !u.LoginDisabled || u.State != "active" {
			t.Fatalf("bob = %+v, %v; want sign-in off, still active", u, err)
		}
		on, off := true, false
		for name, c := range map[string]struct {
			f    projections.UserFilter
			want string
		}{
			"username":      {projections.UserFilter{Username: " ALICE "}, alice},
			"otp on":        {projections.UserFilter{OTP: &on}, alice},
			"otp off, bob":  {projections.UserFilter{OTP: &off, Username: "bob"}, bob},
			"otp off, none": {projections.UserFilter{OTP: &off, Username: "alice"}, ""},
		} {
			got, total, err := users.List(ctx, c.f)
			if err != nil || (c.want == "") != (total == 0) || c.want != "" && (len(got) != 1 || got[0].UID != c.want) {
				t.Errorf("%s: %v (total %d), %v; want %s", name, got, total, err, c.want)
			}
		}

		appendTo(t, e.store, bob, adminMeta, domain.LoginEnabled{})
		appendTo(t, e.store, alice, adminMeta, domain.AccountClosed{Email: "alice@example.com", Username: "alice"},
			domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndAccountClosed})
		alice2 := newUID()
		last = appendTo(t, e.store, alice2, userMeta(alice2), registered(alice2, "alice@example.com", "alice"))
		waitFor(t, r, last.LastPosition)

		if u, err := users.ByUID(ctx, bob); err != nil || u.LoginDisabled {
			t.Errorf("bob = %+v, %v; want sign-in back on", u, err)
		}
		if _, err := users.ByUID(ctx, alice); !errors.Is(err, projections.ErrNotFound) {
			t.Errorf("closed alice: %v, want ErrNotFound", err)
		}
		if u, err := users.ByEmail(ctx, "alice@example.com"); err != nil || u.UID != alice2 || u.OTP {
			t.Errorf("alice@example.com = %+v, %v; want the new user %s, without 2FA", u, err, alice2)
		}
		if got, total, err := users.List(ctx, projections.UserFilter{Username: "alice"}); err != nil || total != 1 || got[0].UID != alice2 {
			t.Errorf("list by username alice = %+v (total %d), %v; want only the new user", got, total, err)
		}
		if ls, err := labels.ForUser(ctx, alice); err != nil || len(ls) != 0 {
			t.Errorf("labels of the closed account = %v, %v", ls, err)
		}
		if keys, err := labels.Keys(ctx); err != nil || len(keys) != 0 {
			t.Errorf("labels in use = %v, %v; want none once the only holder is closed", keys, err)
		}

		rows, total, err := activity.List(ctx, projections.ActivityFilter{UID: admin, AdminOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range rows {
			got = append(got, a.Action+" "+a.TargetUID+" "+a.Topic)
		}
		want := []string{"end_session " + alice + " admin", "close " + alice + " admin", "enable_login " + bob + " admin",
			"disable_login " + bob + " admin", "add " + alice + " admin"}
		if total != len(want) || len(got) != len(want) {
			t.Fatalf("admin rows %q (total %d), want %q", got, total, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("admin row %d = %q, want %q", i, got[i], want[i])
			}
		}
		// History stays: the closed user's own rows are still there.
		if own, _, err := activity.List(ctx, projections.ActivityFilter{UID: alice}); err != nil || len(own) != 2 {
			t.Errorf("the closed user's own rows = %d, %v; want 2 (signup, 2FA)", len(own), err)
		}
	})
}

func TestUserMetrics(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		_, activity := e.views()
		r := start(t, e.runtime(t, projections.Options{}, activity))
		ctx := context.Background()

		admin, early, alice, bob, carol := newUID(), newUID(), newUID(), newUID(), newUID()
		at := time.Now().UTC()
		appendTo(t, e.store, admin, userMeta(admin), registered(admin, "admin@example.com", ""))
		appendTo(t, e.store, early, userMeta(early), registered(early, "early@example.com", ""),
			domain.SessionStarted{SessionID: "e1", At: at, ExpiresAt: at.Add(time.Hour)})
		time.Sleep(5 * time.Millisecond)
		from := appendTo(t, e.store, alice, userMeta(alice), registered(alice, "alice@example.com", "")).RecordedAt
		adminMeta := eventstore.Metadata{ActorUID: admin, ActorRole: "admin"}
		appendTo(t, e.store, bob, adminMeta, registered(bob, "bob@example.com", "")) // created by the admin
		appendTo(t, e.store, alice, userMeta(alice),
			domain.SessionStarted{SessionID: "a1", At: at, ExpiresAt: at.Add(time.Hour)},
			domain.SessionStarted{SessionID: "a2", At: at, ExpiresAt: at.Add(time.Hour)})
		appendTo(t, e.store, bob, eventstore.Metadata{}, domain.LoginFailed{Reason: domain.LoginFailureInvalidPassword, At: at},
			domain.LoginFailed{Reason: domain.LoginFailureNotActive, At: at})
		appendTo(t, e.store, bob, userMeta(bob), domain.SessionStarted{SessionID: "b1", At: at, ExpiresAt: at.Add(time.Hour)})
		time.Sleep(5 * time.Millisecond)
		after := appendTo(t, e.store, carol, userMeta(carol), registered(carol, "carol@example.com", ""))
		to := after.RecordedAt // excluded: carol's sign-up is outside the period
		waitFor(t, r, after.LastPosition)

		m, err := activity.UserMetrics(ctx, from, to)
		if err != nil {
			t.Fatal(err)
		}
		want := projections.UserMetrics{From: from, To: to, SignUps: 2, SignIns: 3, FailedSignIns: 2, ActiveUsers: 2}
		if m != want {
			t.Errorf("metrics = %+v\nwant      %+v", m, want)
		}
		if m, err := activity.UserMetrics(ctx, to.Add(time.Hour), to.Add(2*time.Hour)); err != nil || m.SignUps+m.SignIns+m.FailedSignIns+m.ActiveUsers != 0 {
			t.Errorf("an empty period = %+v, %v", m, err)
		}
		for _, c := range []struct {
			from, to time.Time
			field    string
		}{{time.Time{}, to, "from"}, {from, time.Time{}, "to"}, {to, from, "from"}, {from, from, "from"}} {
			_, err := activity.UserMetrics(ctx, c.from, c.to)
			var fe *projections.FilterError
			if !errors.Is(err, projections.ErrInvalidFilter) || !errors.As(err, &fe) || fe.Field != c.field {
				t.Errorf("period %v to %v: %v, want a FilterError on %s", c.from, c.to, err, c.field)
			}
		}
	})
}
