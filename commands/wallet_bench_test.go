package commands_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/lib/pq"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
)

// benchClients is how many clients spend at once.
const benchClients = 8

// benchStore is an event store the wallet benchmark runs on.
type benchStore interface {
	eventstore.Store
	eventstore.KeyOwners
}

func benchStores(b *testing.B) map[string]func(b *testing.B) benchStore {
	return map[string]func(b *testing.B) benchStore{
		"sqlite": func(b *testing.B) benchStore {
			s, err := sqlite.Open(b.Context(), sqlite.Options{Path: filepath.Join(b.TempDir(), "idlog.db")})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
		"postgres": func(b *testing.B) benchStore {
			s, err := postgres.Open(b.Context(), postgres.Options{DSN: benchSchema(b)})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		},
	}
}

// benchSchema makes an empty Postgres schema and returns a DSN using it, or skips without
// IDLOG_TEST_DATABASE_URL.
func benchSchema(b *testing.B) string {
	base := os.Getenv("IDLOG_TEST_DATABASE_URL")
	if base == "" {
		b.Skip("Postgres SKIPPED: set IDLOG_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable")
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		b.Fatal(err)
	}
	defer admin.Close()
	schema := "b_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if db, err := sql.Open("postgres", base); err == nil {
			db.Exec("DROP SCHEMA " + schema + " CASCADE")
			db.Close()
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		b.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func benchApp(b *testing.B, s benchStore) commands.Application {
	hasher, sealer, signer := testSecrets(b, cheap, nil)
	app, err := commands.New(commands.Deps{
		Store: s, Keys: s, Registry: domain.NewEventRegistry(), Hasher: hasher, Sealer: sealer, Tokens: signer, Notifier: &mailbox{},
		Attempts: newLimiter(b),
	}, commands.Config{Wallet: commands.WalletConfig{SignupBonus: 1 << 40}})
	if err != nil {
		b.Fatal(err)
	}
	return app
}

// runClients runs op b.N times over n clients and reports ops/s.
func runClients(b *testing.B, n int, op func(i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	b.ResetTimer()
	start := time.Now()
	for range n {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "ops/s")
}

// BenchmarkWalletSpend measures spends of 1 coin by 8 concurrent clients: all on one user (a hot
// stream: every spend must see the one before), and spread over 1,000 users. Beside them, in the
// same run and on the same kind of store, the raw append rate: 8 clients appending one event to a
// fresh stream each, which is the ceiling a command that also reads its stream can approach.
// Postgres runs when IDLOG_TEST_DATABASE_URL is set.
func BenchmarkWalletSpend(b *testing.B) {
	data, _ := json.Marshal(domain.WalletDebited{Balance: domain.BalanceFree, Amount: 1, Reason: "spend", Reference: "order-123456"})
	for _, name := range []string{"sqlite", "postgres"} {
		open := benchStores(b)[name]
		b.Run(name+"/raw_append", func(b *testing.B) {
			s := open(b)
			prefix := uuid.NewString()
			runClients(b, benchClients, func(i int64) error {
				_, err := s.Append(context.Background(), eventstore.Append{
					Stream: fmt.Sprintf("bench-%s-%d", prefix, i), Expected: eventstore.NoStream,
					Events: []eventstore.NewEvent{{Type: "WalletDebited", SchemaVersion: 1, Data: data, Metadata: eventstore.Metadata{ActorUID: "IDA1B2C3D4E5"}}},
				})
				return err
			})
		})
		for _, users := range []int{1, 1000} {
			b.Run(fmt.Sprintf("%s/spend_users=%d", name, users), func(b *testing.B) {
				s := open(b)
				app := benchApp(b, s)
				uids := make([]domain.UserID, users)
				for i := range uids {
					r, err := app.Commands.RegisterUser.Handle(b.Context(), commands.RegisterUser{
						Email: fmt.Sprintf("bench%d@example.com", i), Password: strongPassword, TrustEmail: true,
					})
					if err != nil {
						b.Fatal(err)
					}
					uids[i] = domain.UserID(r.Account.UID)
				}
				runClients(b, benchClients, func(i int64) error {
					uid := uids[mrand.IntN(len(uids))]
					_, err := app.Commands.SpendFromWallet.Handle(context.Background(), commands.SpendFromWallet{
						Meta: commands.Meta{ActorUID: string(uid), ActorRole: "member"}, UID: uid, Amount: 1, Reference: "order-123456",
					})
					return err
				})
			})
		}
	}
}
