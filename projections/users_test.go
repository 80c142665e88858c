package projections_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

func TestUsersView(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		users, activity := e.views()
		r := start(t, e.runtime(t, projections.Options{}, users, activity))
		ctx := context.Background()

		admin, alice, bob, carol := newUID(), newUID(), newUID(), newUID()
		adminMeta := eventstore.Metadata{ActorUID: admin, ActorRole: "admin"}
		appendTo(t, e.store, admin, userMeta(admin), registered(admin, "admin@example.com", "boss"))
		// Registrations a few milliseconds apart, so created_at orders and bounds them.
		var regAt []time.Time
		for _, u := range []struct{ uid, email, name string }{{alice, "alice@example.com", "alice"}, {bob, "bob@example.com", ""}, {carol, "carol@example.com", "carol"}} {
			time.Sleep(5 * time.Millisecond)
			regAt = append(regAt, appendTo(t, e.store, u.uid, userMeta(u.uid), registered(u.uid, u.email, u.name)).RecordedAt)
		}
		appendTo(t, e.store, alice, userMeta(alice),
			domain.EmailVerified{Email: "alice@example.com"}, domain.OTPEnabled{Step: 5},
			domain.UserDataUpdated{Data: json.RawMessage(`{"lang":"en"}`)})
		appendTo(t, e.store, alice, adminMeta, domain.RoleChanged{From: domain.RoleMember, To: domain.RoleSupport})
		appendTo(t, e.store, bob, userMeta(bob),
			domain.EmailVerified{Email: "bob@example.com"}, domain.EmailChanged{From: "bob@example.com", To: "robert@example.com"},
			domain.UsernameChanged{To: "robert"})
		appendTo(t, e.store, bob, adminMeta, domain.UserStateChanged{From: domain.StateActive, To: domain.StateBanned, Reason: "spam"})
		last := appendTo(t, e.store, carol, userMeta(carol), domain.EmailVerified{Email: "other@example.com"}, domain.UserDeleted{})
		waitFor(t, r, last.LastPosition)

		a, err := users.ByUID(ctx, alice)
		if err != nil {
			t.Fatal(err)
		}
		want := projections.User{UID: alice, Email: "alice@example.com", Username: "alice", Role: "support", State: "active",
			OTP: true, EmailVerified: true, Data: json.RawMessage(`{"lang":"en"}`)}
		if a.UID != want.UID || a.Email != want.Email || a.Username != want.Username || a.Role != want.Role || a.State != want.State ||
			a.OTP != want.OTP || a.EmailVerified != want.EmailVerified || string(a.Data) != string(want.Data) || a.Level != 0 {
			t.Errorf("alice = %+v\nwant   %+v", a, want)
		}
		if !a.CreatedAt.Equal(regAt[0]) || !a.UpdatedAt.After(a.CreatedAt) {
			t.Errorf("alice created %v, updated %v; want created at registration (%v) and updated later", a.CreatedAt, a.UpdatedAt, regAt[0])
		}
		bo, err := users.ByEmail(ctx, "  Robert@Example.com ")
		if err != nil || bo.UID != bob || bo.EmailVerified || bo.Username != "robert" || bo.State != "banned" || bo.Data != nil {
			t.Errorf("ByEmail(robert) = %+v, %v; want bob, banned, the new email not verified", bo, err)
		}
		c, err := users.ByUsername(ctx, "CAROL")
		if err != nil || c.UID != carol || c.State != "deleted" || c.EmailVerified {
			t.Errorf("ByUsername(carol) = %+v, %v; want carol, deleted, not verified (the verified email was another)", c, err)
		}
		for name, lookup := range map[string]func() (projections.User, error){
			"unknown uid":    func() (projections.User, error) { return users.ByUID(ctx, newUID()) },
			"old email":      func() (projections.User, error) { return users.ByEmail(ctx, "bob@example.com") },
			"empty username": func() (projections.User, error) { return users.ByUsername(ctx, "") },
		} {
			if _, err := lookup(); !errors.Is(err, projections.ErrNotFound) {
				t.Errorf("%s: %v, want ErrNotFound", name, err)
			}
		}

		uids := func(us []projections.User) string {
			var s []string
			for _, u := range us {
				s = append(s, u.UID)
			}
			return strings.Join(s, ",")
		}
		zero, one := 0, 1
		for name, c := range map[string]struct {
			f     projections.UserFilter
			want  []string
			total int
		}{
			"all, newest first":  {projections.UserFilter{}, []string{carol, bob, alice, admin}, 4},
			"page 1 of 2":        {projections.UserFilter{Limit: 3}, []string{carol, bob, alice}, 4},
			"page 2 of 2":        {projections.UserFilter{Limit: 3, Page: 2}, []string{admin}, 4},
			"past the end":       {projections.UserFilter{Limit: 3, Page: 5}, nil, 4},
			"role":               {projections.UserFilter{Role: "support"}, []string{alice}, 1},
			"state":              {projections.UserFilter{State: "banned"}, []string{bob}, 1},
			"email":              {projections.UserFilter{Email: "CAROL@example.com"}, []string{carol}, 1},
			"uid":                {projections.UserFilter{UID: alice}, []string{alice}, 1},
			"level 0":            {projections.UserFilter{Level: &zero, State: "active"}, []string{alice, admin}, 2},
			"level 1":            {projections.UserFilter{Level: &one}, nil, 0},
			"from the second on": {projections.UserFilter{From: regAt[1]}, []string{carol, bob}, 2},
			"to before the last": {projections.UserFilter{From: regAt[0], To: regAt[2]}, []string{bob, alice}, 2},
			"no match":           {projections.UserFilter{Role: "admin", State: "locked"}, nil, 0},
		} {
			got, total, err := users.List(ctx, c.f)
			if err != nil || uids(got) != strings.Join(c.want, ",") || total != c.total {
				t.Errorf("%s: %s (total %d), %v; want %s (total %d)", name, uids(got), total, err, strings.Join(c.want, ","), c.total)
			}
		}

		minus := -1
		for field, f := range map[string]projections.UserFilter{
			"limit": {Limit: 101},
			"page":  {Page: -1},
			"from":  {From: regAt[2], To: regAt[0]},
			"role":  {Role: "king"},
			"state": {State: "asleep"},
			"level": {Level: &minus},
			"uid":   {UID: "alice"},
		} {
			_, _, err := users.List(ctx, f)
			var fe *projections.FilterError
			if !errors.Is(err, projections.ErrInvalidFilter) || !errors.As(err, &fe) || fe.Field != field {
				t.Errorf("List(%+v) = %v; want a FilterError on %s", f, err, field)
			}
		}
	})
}
