package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// defaultBenchHistory is how many past sign-ins the heavy user of BenchmarkHistoryCost has;
// IDLOG_BENCH_HISTORY overrides it (CI runs it short).
const defaultBenchHistory = 10000

// BenchmarkHistoryCost measures what a user's history costs each request: /users/me through the
// router (bearer check, then the read models), a wallet spend and a sign-in (at the cheapest
// argon2 costs, so the hash does not hide the rest), for a user with a long history of sign-ins
// and for a fresh one, alternately in the same run. heavy/fresh is the figure to watch: the goal
// is at most 1.2. The heavy user's first request is made before timing: the cold load of a
// process is paid once, not per request.
func BenchmarkHistoryCost(b *testing.B) {
	history := defaultBenchHistory
	if n, err := strconv.Atoi(os.Getenv("IDLOG_BENCH_HISTORY")); err == nil && n > 0 {
		history = n
	}
	for _, backend := range benchBackends() {
		b.Run(backend, func(b *testing.B) {
			s := newServer(b, backend, serverOptions{signIn: commands.SignInConfig{MaxFailures: -1, AddressMaxFailures: -1}})
			fresh := benchUser(b, s, "fresh@example.com", 0)
			heavy := benchUser(b, s, "heavy@example.com", history)
			ops := []struct {
				name string
				do   func(u benchAccount) response
				want int
			}{
				{"me", func(u benchAccount) response { return s.get("/api/v2/resource/users/me", u.token) }, http.StatusOK},
				{"spend", func(u benchAccount) response {
					return s.post("/api/v2/resource/wallet/spend", obj{"amount": 1}, u.token)
				}, http.StatusOK},
				{"signin", func(u benchAccount) response {
					return s.post("/api/v2/identity/sessions", obj{"login": u.email, "password": password}, "")
				}, http.StatusOK},
			}
			for _, op := range ops {
				b.Run(op.name, func(b *testing.B) {
					for _, u := range []benchAccount{fresh, heavy} { // warm: one cold load each
						if r := op.do(u); r.status != op.want {
							b.Fatalf("%s of %s: %d %s", op.name, u.email, r.status, r.body)
						}
					}
					var took [2]time.Duration
					b.ResetTimer()
					for range b.N {
						for i, u := range []benchAccount{fresh, heavy} {
							start := time.Now()
							r := op.do(u)
							took[i] += time.Since(start)
							if r.status != op.want {
								b.Fatalf("%s of %s: %d %s", op.name, u.email, r.status, r.body)
							}
						}
					}
					b.StopTimer()
					b.ReportMetric(float64(took[0].Microseconds())/float64(b.N), "fresh-µs")
					b.ReportMetric(float64(took[1].Microseconds())/float64(b.N), "heavy-µs")
					b.ReportMetric(float64(took[1])/float64(took[0]), "heavy/fresh")
				})
			}
		})
	}
}

type benchAccount struct{ email, token string }

// benchUser signs a user up, gives them coins, appends `history` past sign-ins straight to their
// stream (as the sign-in command would have: most expired long ago, the last ones still open, some
// ended by a sign-out), waits for the read models, and signs them in.
func benchUser(b *testing.B, s *server, email string, history int) benchAccount {
	b.Helper()
	ctx := context.Background()
	uid := s.signUp(b, email, "")
	stream := domain.UserID(uid).Stream()
	meta := eventstore.Metadata{ActorUID: uid, ActorRole: "member", IP: "192.0.2.7", UserAgent: "bench"}
	event := func(e domain.Event) eventstore.NewEvent {
		data, err := json.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		return eventstore.NewEvent{ID: uuid.Must(uuid.NewV7()), Type: e.EventType(), SchemaVersion: 1, Data: data, Metadata: meta}
	}
	batch := []eventstore.NewEvent{event(domain.WalletCredited{Balance: domain.BalanceStandard, Amount: 1 << 40, Reason: "deposit"})}
	now := s.clock.Now()
	const every = 10 * time.Minute // sign-ins ten minutes apart...
	ttl := 15 * time.Minute        // ...for sessions of the default token lifetime: the last one or two are open
	var last eventstore.AppendResult
	flush := func() {
		var err error
		if last, err = s.store.Append(ctx, eventstore.Append{Stream: stream, Expected: eventstore.Any, Events: batch}); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := range history {
		at := now.Add(-time.Duration(history-i) * every)
		if i >= history-50 { // a burst of recent sign-ins from many devices: 50 open sessions
			at = now.Add(-time.Duration(history-i) * time.Second)
		}
		sid := fmt.Sprintf("s%07d", i)
		batch = append(batch, event(domain.SessionStarted{SessionID: sid, At: at, ExpiresAt: at.Add(ttl)}))
		if i%5 == 0 && i < history-50 {
			batch = append(batch, event(domain.SessionEnded{SessionID: sid, Reason: domain.SessionEndLogout}))
		}
		if len(batch) >= 1000 {
			flush()
		}
	}
	flush()
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	if err := s.runtime.WaitFor(wctx, last.LastPosition); err != nil {
		b.Fatal(err)
	}
	return benchAccount{email: email, token: s.signIn(b, email, "")}
}
