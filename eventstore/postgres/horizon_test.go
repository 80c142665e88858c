package postgres_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
)

// TestHoldingTransactionsNamesAnOpenWriter: a transaction left open after a write is listed
// with its pid and state, so the follower it holds back can name it.
func TestHoldingTransactionsNamesAnOpenWriter(t *testing.T) {
	t.Parallel()
	if os.Getenv("IDLOG_TEST_DATABASE_URL") == "" {
		t.Skip("set IDLOG_TEST_DATABASE_URL")
	}
	s := open(t, postgres.Options{DSN: eventstoretest.PostgresSchema(t)})
	defer s.Close()
	ctx := context.Background()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck // test
	var pid int
	if _, err := tx.ExecContext(ctx, `SELECT pg_current_xact_id()`); err != nil { // takes an id, as a write does
		t.Fatal(err)
	}
	if err := tx.QueryRowContext(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	// The watch names the oldest such transaction (ours, or an older one of the cluster).
	logs := &lockedBuffer{}
	held := prometheus.NewGauge(prometheus.GaugeOpts{Name: "held"})
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		postgres.HorizonWatch{Store: s, Interval: 10 * time.Millisecond, WarnAfter: time.Nanosecond,
			Logger: slog.New(slog.NewTextHandler(logs, nil)), Held: held}.Run(wctx)
	}()
	for !strings.Contains(logs.String(), "holds back every follower") || gaugeValue(held) <= 0 {
		select {
		case <-time.After(10 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatalf("no warning naming the open transaction: %q", logs.String())
		}
	}
	stop()
	<-done
	if !strings.Contains(logs.String(), "pid=") {
		t.Errorf("the warning names no pid: %q", logs.String())
	}

	open, err := s.HoldingTransactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, o := range open {
		if o.PID == pid {
			found = true
			if o.State != "idle in transaction" || o.Age < 0 {
				t.Errorf("open transaction %+v: want state idle in transaction", o)
			}
		}
	}
	if !found {
		t.Fatalf("pid %d holds a transaction id but is not listed: %+v", pid, open)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	open, err = s.HoldingTransactions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range open {
		if o.PID == pid {
			t.Fatalf("pid %d is listed after its rollback: %+v", pid, o)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		return -1
	}
	return m.GetGauge().GetValue()
}
