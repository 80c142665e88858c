package projections_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

func TestActivityRows(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		users, activity := e.views()
		r := start(t, e.runtime(t, projections.Options{}, users, activity))
		ctx := context.Background()

		admin, uid := newUID(), newUID()
		me := userMeta(uid)
		adminMeta := eventstore.Metadata{ActorUID: admin, ActorRole: "admin", IP: "198.51.100.1", UserAgent: "console"}
		system := eventstore.Metadata{ActorUID: eventstore.ActorSystem}
		at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		tokenHash := strings.Repeat("ab", 32)
		appendTo(t, e.store, admin, userMeta(admin), registered(admin, "root@example.com", ""))
		steps := []struct {
			meta eventstore.Metadata
			e    domain.Event
			want string // uid target topic action result data
		}{
			{me, registered(uid, "me@example.com", "me"), "me - account signup succeed -"},
			{me, domain.EmailVerificationRequested{Email: "me@example.com", TokenHash: tokenHash, ExpiresAt: at}, "me - account request_email_verification succeed -"},
			{me, domain.EmailVerified{Email: "me@example.com"}, "me - account verify_email succeed -"},
			{me, domain.SessionStarted{SessionID: "s1", At: at, ExpiresAt: at.Add(time.Hour), OTPStep: 9}, `me - session login succeed {"otp":true}`},
			{me, domain.LoginFailed{Reason: domain.LoginFailureInvalidOTP, At: at}, `me - session login failed {"reason":"invalid_otp"}`},
			{me, domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndLogout}, "me - session logout succeed -"},
			{me, domain.PasswordChanged{PasswordHash: "$argon2id$v=19$secret-hash"}, "me - password change succeed -"},
			{me, domain.SessionEnded{SessionID: "s2", Reason: domain.SessionEndPasswordChanged}, `me - session end_session succeed {"reason":"password_changed"}`},
			{me, domain.PasswordResetRequested{TokenHash: tokenHash, ExpiresAt: at}, "me - password request_reset succeed -"},
			{me, domain.PasswordReset{PasswordHash: "$argon2id$v=19$other-hash"}, "me - password reset succeed -"},
			{me, domain.EmailChanged{From: "me@example.com", To: "new@example.com"}, `me - account change_email succeed {"from":"me@example.com","to":"new@example.com"}`},
			{me, domain.UsernameChanged{From: "me", To: "myself"}, `me - account change_username succeed {"from":"me","to":"myself"}`},
			{me, domain.UserDataUpdated{}, "me - account update_data succeed -"},
			{me, domain.OTPSecretGenerated{Ciphertext: []byte("sealed-secret")}, "me - otp generate_secret succeed -"},
			{me, domain.OTPEnabled{Step: 10}, "me - otp enable succeed -"},
			{me, domain.OTPVerified{Step: 11}, "me - otp verify succeed -"},
			{me, domain.OTPDisabled{Step: 12}, "me - otp disable succeed -"},
			{system, domain.UserStateChanged{From: domain.StateActive, To: domain.StateLocked, Reason: "too many failures"}, `me - account change_state succeed {"from":"active","to":"locked","reason":"too many failures"}`},
			{adminMeta, domain.UserStateChanged{From: domain.StateLocked, To: domain.StateActive}, `admin me admin change_state succeed {"from":"locked","to":"active"}`},
			{adminMeta, domain.RoleChanged{From: domain.RoleMember, To: domain.RoleAdmin}, `admin me admin change_role succeed {"from":"member","to":"admin"}`},
			{system, domain.LabelAdded{Key: "email", Value: "verified", Scope: domain.ScopePrivate}, `me - label add succeed {"key":"email","value":"verified","scope":"private"}`},
			{system, domain.LevelChanged{From: 0, To: 1}, `me - account change_level succeed {"from":0,"to":1}`},
			{adminMeta, domain.LabelUpdated{Key: "email", Value: "rejected", Scope: domain.ScopePrivate}, `admin me admin update succeed {"key":"email","value":"rejected","scope":"private"}`},
			{adminMeta, domain.LabelRemoved{Key: "email", Scope: domain.ScopePrivate}, `admin me admin remove succeed {"key":"email","scope":"private"}`},
			{system, domain.WalletCredited{Balance: domain.BalanceFree, Amount: 50, Reason: "signup_bonus"}, `me - wallet credit succeed {"balance":"free","amount":50,"reason":"signup_bonus"}`},
			{me, domain.WalletDebited{Balance: domain.BalanceFree, Amount: 20, Reason: "spend", Reference: "order-1"}, `me - wallet debit succeed {"balance":"free","amount":20,"reason":"spend","reference":"order-1"}`},
			{me, domain.UserDeleted{}, "me - account delete succeed -"},
		}
		var last eventstore.AppendResult
		for _, s := range steps {
			last = appendTo(t, e.store, uid, s.meta, s.e)
		}
		waitFor(t, r, last.LastPosition)

		name := map[string]string{uid: "me", admin: "admin", "": "-"}
		show := func(a projections.Activity) string {
			data := string(a.Data)
			if data == "" {
				data = "-"
			}
			return strings.Join([]string{name[a.UID], name[a.TargetUID], a.Topic, a.Action, a.Result, data}, " ")
		}
		var all []projections.Activity
		for p := 1; ; p++ {
			page, total, err := activity.List(ctx, projections.ActivityFilter{Page: p, Limit: 7})
			if err != nil {
				t.Fatal(err)
			}
			if total != len(steps)+1 {
				t.Fatalf("total %d, want %d", total, len(steps)+1)
			}
			if len(page) == 0 {
				break
			}
			all = append(all, page...)
		}
		if len(all) != len(steps)+1 {
			t.Fatalf("%d rows over the pages, want %d", len(all), len(steps)+1)
		}
		// Newest first: all[0] is the last step; the admin's own sign-up is last.
		for i, s := range steps {
			a := all[len(steps)-1-i]
			if got := show(a); got != s.want {
				t.Errorf("%s: %s\n  want %s", s.e.EventType(), got, s.want)
			}
			if a.UserIP != s.meta.IP || a.UserAgent != s.meta.UserAgent {
				t.Errorf("%s: ip %q, agent %q; want the envelope's %q, %q", s.e.EventType(), a.UserIP, a.UserAgent, s.meta.IP, s.meta.UserAgent)
			}
			for _, secret := range []string{"argon2id", tokenHash, "sealed"} {
				if strings.Contains(string(a.Data), secret) {
					t.Errorf("%s: data %s shows a secret", s.e.EventType(), a.Data)
				}
			}
		}
		for i := 1; i < len(all); i++ {
			if all[i].ID >= all[i-1].ID || all[i].CreatedAt.After(all[i-1].CreatedAt) {
				t.Fatalf("rows %d and %d are not newest first", i-1, i)
			}
		}
		if all[0].ID != int64(last.LastPosition) {
			t.Errorf("the newest row's id is %d, want the event's position %d", all[0].ID, last.LastPosition)
		}

		lastAt := all[0].CreatedAt
		for fname, c := range map[string]struct {
			f    projections.ActivityFilter
			want int
		}{
			"my session rows":       {projections.ActivityFilter{UID: uid, Topic: "session"}, 4},
			"topic all":             {projections.ActivityFilter{UID: uid, Topic: "all"}, len(steps) - 4},
			"logins":                {projections.ActivityFilter{Topic: "session", Action: "login"}, 2},
			"admin rows":            {projections.ActivityFilter{AdminOnly: true}, 4},
			"admin rows by email":   {projections.ActivityFilter{AdminOnly: true, Email: "ROOT@example.com"}, 4},
			"rows about a target":   {projections.ActivityFilter{TargetUID: uid}, 4},
			"rows of an email":      {projections.ActivityFilter{Email: "root@example.com"}, 5},
			"my wallet":             {projections.ActivityFilter{UID: uid, Topic: "wallet"}, 2},
			"email nobody has":      {projections.ActivityFilter{Email: "nobody@example.com"}, 0},
			"from the newest on":    {projections.ActivityFilter{From: lastAt}, 1},
			"to before the newest":  {projections.ActivityFilter{To: lastAt}, len(steps)},
			"otp topic of someone":  {projections.ActivityFilter{UID: admin, Topic: "otp"}, 0},
			"a topic nobody has":    {projections.ActivityFilter{UID: admin, Topic: "wallet"}, 0},
			"action that never was": {projections.ActivityFilter{Action: "fly"}, 0},
		} {
			rows, total, err := activity.List(ctx, c.f)
			if err != nil || total != c.want || len(rows) != min(c.want, projections.DefaultLimit) {
				t.Errorf("%s: %d rows, total %d, %v; want %d", fname, len(rows), total, err, c.want)
			}
		}
		for field, f := range map[string]projections.ActivityFilter{
			"topic":      {Topic: "gossip"},
			"limit":      {Limit: 1000},
			"page":       {Page: -2},
			"from":       {From: lastAt, To: lastAt.Add(-time.Second)},
			"uid":        {UID: "me"},
			"target_uid": {TargetUID: "x"},
			"action":     {Action: strings.Repeat("a", 65)},
		} {
			_, _, err := activity.List(ctx, f)
			var fe *projections.FilterError
			if !errors.Is(err, projections.ErrInvalidFilter) || !errors.As(err, &fe) || fe.Field != field {
				t.Errorf("List(%s) = %v; want a FilterError on %s", fmt.Sprint(f), err, field)
			}
		}
	})
}
