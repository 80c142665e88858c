package projections_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/projections"
)

// allViews returns the projectors `idlog projections rebuild all` rebuilds (cmd/idlog
// openReadModels).
func (e env) allViews() []projections.Projector {
	users, activity := e.views()
	return []projections.Projector{users, activity,
		projections.NewLabelsView(e.db, e.dialect), projections.NewWalletView(e.db, e.dialect),
		projections.NewSessionsView(e.db, e.dialect), projections.NewUserProfilesView(e.db, e.dialect),
		projections.NewKYCView(e.db, e.dialect), projections.NewAPIKeysView(e.db, e.dialect),
		projections.NewPasswordClassesView(e.db, e.dialect, auth.CostClass)}
}

// mixedWorkload appends a history that every projector has work in: sign-ups, sign-ins, profile
// changes, labels added, changed and removed, wallet credits and debits, administrators' actions
// and closed accounts, one to four events per append. It keeps each user's labels and balances
// valid, as the domain does. It returns the last position and the number of events.
func mixedWorkload(t testing.TB, s eventstore.Store, users, appends int, seed uint64) (last uint64, n int) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	admin := newUID()
	adminMeta := eventstore.Metadata{ActorUID: admin, ActorRole: "admin", IP: "198.51.100.1", UserAgent: "admin-console"}
	res := appendTo(t, s, admin, userMeta(admin), registered(admin, strings.ToLower(admin)+"@admin.test", ""))
	last, n = res.LastPosition, 1
	type user struct {
		uid            string
		labels         map[string]bool // key/scope
		free, standard int64
		closed         bool
		sessions       []string
	}
	us := make([]*user, users)
	for i := range us {
		us[i] = &user{uid: newUID(), labels: map[string]bool{}}
		reg := registered(us[i].uid, strings.ToLower(us[i].uid)+"@example.com", fmt.Sprintf("m%d_%d", seed, i))
		if i%3 == 0 { // imported, with its hash's cost class
			reg.CreatedAt = time.Date(2029, 1, 1, 0, 0, 0, 0, time.UTC)
			reg.PasswordHash = fmt.Sprintf("$argon2id$v=19$m=%d,t=2,p=1$c2FsdA$aGFzaA", 19456+1024*(i%2))
		}
		res := appendTo(t, s, us[i].uid, userMeta(us[i].uid), reg)
		last, n = res.LastPosition, n+1
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	keys := []string{"email", "phone", "document", "tier"}
	scopes := []domain.LabelScope{domain.ScopePrivate, domain.ScopePublic}
	for range appends {
		u := us[rnd.IntN(len(us))]
		if u.closed {
			continue
		}
		meta := userMeta(u.uid)
		if rnd.IntN(4) == 0 {
			meta = adminMeta
		}
		var events []domain.Event
		for range 1 + rnd.IntN(4) {
			key, scope := keys[rnd.IntN(len(keys))], scopes[rnd.IntN(len(scopes))]
			held := u.labels[key+"/"+scope.String()]
			balance, bal := domain.BalanceFree, &u.free
			if rnd.IntN(2) == 0 {
				balance, bal = domain.BalanceStandard, &u.standard
			}
			var e domain.Event
			switch rnd.IntN(18) {
			case 0:
				// Sign-ins spread over days, so that a later one drops the user's expired sessions.
				start := at.Add(time.Duration(rnd.IntN(72)) * time.Hour).Add(time.Duration(rnd.IntN(1000)) * time.Nanosecond)
				sid := uuid.NewString()
				u.sessions = append(u.sessions, sid)
				e = domain.SessionStarted{SessionID: sid, At: start, ExpiresAt: start.Add(time.Duration(1+rnd.IntN(48)) * time.Hour), CSRFHash: []string{"", "h"}[rnd.IntN(2)]}
			case 14, 15:
				if len(u.sessions) == 0 {
					continue
				}
				sid := u.sessions[rnd.IntN(len(u.sessions))]
				if rnd.IntN(2) == 0 {
					when := at.Add(time.Duration(rnd.IntN(72)) * time.Hour)
					e = domain.SessionRefreshed{SessionID: sid, At: when, ExpiresAt: when.Add(2 * time.Hour)}
				} else {
					e = domain.SessionEnded{SessionID: sid, Reason: domain.SessionEndLogout}
				}
			case 16:
				e = domain.PasswordChanged{PasswordHash: "$argon2id$v=19$changed"}
			case 17:
				e = domain.SessionStarted{SessionID: uuid.NewString(), At: at, ExpiresAt: at.Add(time.Hour)}
			case 1:
				e = domain.LoginFailed{Reason: domain.LoginFailureInvalidPassword, At: at}
			case 2:
				e = domain.UsernameChanged{To: fmt.Sprintf("n%d", rnd.IntN(1<<30))}
			case 3:
				e = domain.UserDataUpdated{Data: []byte(fmt.Sprintf(`{"n":%d}`, rnd.IntN(1000)))}
			case 4:
				e = domain.OTPEnabled{Step: int64(rnd.IntN(1000))}
			case 5:
				e = domain.LevelChanged{From: rnd.IntN(3), To: rnd.IntN(3)}
			case 6, 7:
				if held {
					e = domain.LabelUpdated{Key: key, Value: fmt.Sprintf("v%d", rnd.IntN(100)), Scope: scope, Description: "changed"}
				} else {
					e = domain.LabelAdded{Key: key, Value: "pending", Scope: scope}
				}
				u.labels[key+"/"+scope.String()] = true
			case 8:
				if !held {
					continue
				}
				e = domain.LabelRemoved{Key: key, Scope: scope}
				delete(u.labels, key+"/"+scope.String())
			case 9, 10:
				amount := int64(1 + rnd.IntN(100))
				e = domain.WalletCredited{Balance: balance, Amount: amount, Reason: "deposit", Reference: fmt.Sprintf("r%d", rnd.IntN(1000))}
				*bal += amount
			case 11:
				if *bal == 0 {
					continue
				}
				amount := 1 + rnd.Int64N(*bal)
				e = domain.WalletDebited{Balance: balance, Amount: amount, Reason: "spend"}
				*bal -= amount
			case 12:
				e, meta = domain.UserStateChanged{From: domain.StateActive, To: domain.StateLocked, Reason: "test"}, adminMeta
			default:
				if rnd.IntN(6) != 0 {
					e = domain.EmailVerified{Email: strings.ToLower(u.uid) + "@example.com"}
					break
				}
				// Nothing follows a closure in a user's stream.
				events = append(events, domain.AccountClosed{Email: strings.ToLower(u.uid) + "@example.com"})
				if rnd.IntN(2) == 0 { // and sometimes its personal data erased: activity forgets it
					events = append(events, domain.UserErased{})
				}
				u.closed = true
			}
			if u.closed {
				break
			}
			events = append(events, e)
		}
		if len(events) == 0 {
			continue
		}
		res := appendTo(t, s, u.uid, meta, events...)
		last, n = res.LastPosition, n+len(events)
	}
	return last, n
}

// TestRebuildMatchesLiveProjection: rebuilding all four read models, in large batches from one
// shared scan of the log, in batches that cut users' histories anywhere, or one projector at a
// time, gives exactly the rows that projecting the same history live, one event per transaction,
// gave.
func TestRebuildMatchesLiveProjection(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{})
		last, n := mixedWorkload(t, e.store, 30, 300, 11)
		live := start(t, e.runtime(t, projections.Options{BatchSize: 1}, e.allViews()...))
		// One event per transaction and projector takes a while on a busy machine.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := live.WaitFor(ctx, last); err != nil {
			t.Fatal(err)
		}
		live.Stop()
		want := snapshot(t, e.db)
		for _, table := range []string{"users", "activity", "user_labels", "wallets", "wallet_movements", "user_sessions", "password_classes"} {
			if !strings.Contains(want, "table "+table+"\n") || strings.Contains(want, "table "+table+"\n--") {
				t.Fatalf("the live %s table is empty; the test proves nothing:\n%s", table, want)
			}
		}

		for _, c := range []struct {
			name     string
			o        projections.Options
			together bool
		}{
			{"all together, default batches", projections.Options{}, true},
			{"all together, batches of 7", projections.Options{RebuildBatchSize: 7}, true},
			{"one at a time, batches of 64", projections.Options{RebuildBatchSize: 64}, false},
		} {
			r := e.runtime(t, c.o, e.allViews()...)
			names := [][]string{r.Projectors()}
			if !c.together {
				names = nil
				for _, name := range r.Projectors() {
					names = append(names, []string{name})
				}
			}
			for _, ns := range names {
				if err := r.Rebuild(context.Background(), ns...); err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
			}
			if got := snapshot(t, e.db); got != want {
				t.Fatalf("%s: the rebuilt read models differ from the live ones:\n%s", c.name, firstDiff(got, want))
			}
		}
		t.Logf("%d events; read models rebuilt three ways, identical to live projection", n)
	})
}
