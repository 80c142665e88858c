package audit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/idlog/idlog/audit"
)

// testWitness is a witness as C2SP tlog-witness describes one: it accepts a checkpoint only if
// it is signed by the log's audit key and, by the consistency proof sent with it, extends the
// last checkpoint it accepted. While down it answers 503.
type testWitness struct {
	vkey string

	mu       sync.Mutex
	down     bool
	heads    []audit.TreeHead
	rejected []string // why requests were refused, other than while down or for a stale size
}

func (w *testWitness) setDown(down bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.down = down
}

func (w *testWitness) accepted() []audit.TreeHead {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]audit.TreeHead(nil), w.heads...)
}

func (w *testWitness) refusals() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.rejected...)
}

func (w *testWitness) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.down {
		http.Error(rw, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	refuse := func(status int, why string) {
		w.rejected = append(w.rejected, why)
		http.Error(rw, why, status)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/plain") {
		refuse(http.StatusBadRequest, "not a POST of text")
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Scan()
	oldText, ok := strings.CutPrefix(sc.Text(), "old ")
	old, err := strconv.ParseUint(oldText, 10, 64)
	if !ok || err != nil {
		refuse(http.StatusBadRequest, "no old size line")
		return
	}
	read := len(sc.Text()) + 1
	var hashes [][]byte
	for sc.Scan() {
		read += len(sc.Text()) + 1
		if sc.Text() == "" {
			break
		}
		h, err := base64.StdEncoding.DecodeString(sc.Text())
		if err != nil {
			refuse(http.StatusBadRequest, "bad proof line")
			return
		}
		hashes = append(hashes, h)
	}
	head, err := audit.OpenCheckpoint(body[read:], w.vkey)
	if err != nil {
		refuse(http.StatusForbidden, err.Error())
		return
	}
	var last audit.TreeHead
	if len(w.heads) > 0 {
		last = w.heads[len(w.heads)-1]
	}
	if old != last.Size {
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", last.Size)
		return
	}
	if head.Size < last.Size {
		refuse(http.StatusBadRequest, "checkpoint older than the last one")
		return
	}
	if last.Size > 0 {
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, last.Size, head.Size, hashes, last.Root[:], head.Root[:]); err != nil {
			refuse(http.StatusUnprocessableEntity, fmt.Sprintf("size %d to %d: %v", last.Size, head.Size, err))
			return
		}
	} else if len(hashes) > 0 {
		refuse(http.StatusBadRequest, "a proof from size 0")
		return
	}
	w.heads = append(w.heads, head)
	fmt.Fprintln(rw, "— witness cosignature")
}

func runWitness(t *testing.T, o audit.WitnessOptions) *audit.Witness {
	t.Helper()
	w, _ := runStoppableWitness(t, o)
	return w
}

// runStoppableWitness runs a witness poster and returns it with a function that stops it.
func runStoppableWitness(t *testing.T, o audit.WitnessOptions) (*audit.Witness, func()) {
	t.Helper()
	w, err := audit.NewWitness(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return w, stop
}

// TestWitness: every signed checkpoint reaches the witness in order, each consistent with the one
// before. While the witness is down sealing goes on, the failures are counted, and once it is back
// it receives every checkpoint it missed, even those of an idlog that stopped meanwhile: the
// poster of its restart learns the witness's size from its 409 and posts the missed ones from the
// ledger first.
func TestWitness(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			e := b.open(t)
			signer, vkey := newAuditKey(t, "idlog.example/audit")
			tw := &testWitness{vkey: vkey}
			srv := httptest.NewServer(tw)
			t.Cleanup(srv.Close)
			o := audit.WitnessOptions{URL: srv.URL + "/add-checkpoint", Ledger: e.ledger, RetryMin: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond}
			w := runWitness(t, o)
			seal := func() { sealWith(t, e, audit.SealerOptions{CheckpointEvery: 4, Signer: signer, Publisher: w}) }

			seed(t, e.store, 6)
			seal()
			all := ledgerCheckpoints(t, e.ledger)
			waitFor(t, "the first checkpoints at the witness", func() bool { return len(tw.accepted()) == len(all) })

			tw.setDown(true)
			seed(t, e.store, 9)
			seal() // returns although the witness is down: posting never holds up sealing
			waitFor(t, "failed posts to be counted", func() bool { return w.Failures() >= 2 })
			if n := len(tw.accepted()); n != len(all) {
				t.Fatalf("the witness, down, accepted %d checkpoints, want %d", n, len(all))
			}
			if w.Pending() == 0 {
				t.Fatal("no checkpoint waits for the witness while it is down")
			}
			tw.setDown(false)
			all = ledgerCheckpoints(t, e.ledger)
			waitFor(t, "the missed checkpoints at the witness", func() bool { return len(tw.accepted()) == len(all) })

			// idlog stops while the witness is down, with checkpoints it had not posted yet; the
			// fresh poster of its restart does not know the witness's size, learns it from the
			// 409, and posts the missed checkpoints from the ledger before its own.
			w1, stop1 := runStoppableWitness(t, o)
			tw.setDown(true)
			seed(t, e.store, 9)
			sealWith(t, e, audit.SealerOptions{CheckpointEvery: 4, Signer: signer, Publisher: w1})
			waitFor(t, "a failed post", func() bool { return w1.Failures() >= 1 })
			stop1()
			if w1.Pending() == 0 {
				t.Fatal("no checkpoint was left unposted by the stopped poster")
			}
			tw.setDown(false)
			w2 := runWitness(t, o)
			seed(t, e.store, 3)
			sealWith(t, e, audit.SealerOptions{CheckpointEvery: 4, Signer: signer, Publisher: w2})
			all = ledgerCheckpoints(t, e.ledger)
			waitFor(t, "every checkpoint after the restart", func() bool { return len(tw.accepted()) == len(all) })

			if r := tw.refusals(); len(r) > 0 {
				t.Fatalf("the witness refused requests: %q", r)
			}
			got := tw.accepted()
			for i, c := range all {
				if got[i].Size != c.Ordinal || got[i].Root != c.Root {
					t.Fatalf("witness checkpoint %d: size %d root %s, want size %d root %s", i, got[i].Size, got[i].Root, c.Ordinal, c.Root)
				}
			}
		})
	}
}

// TestWitnessRefusesForgery: a witness holding the log's key refuses a checkpoint signed by
// another key, and the poster counts the failure instead of skipping the checkpoint.
func TestWitnessRefusesForgery(t *testing.T) {
	t.Parallel()
	e := openSQLite(t)
	_, vkey := newAuditKey(t, "idlog.example/audit")
	forger, _ := newAuditKey(t, "idlog.example/audit")
	tw := &testWitness{vkey: vkey}
	srv := httptest.NewServer(tw)
	t.Cleanup(srv.Close)
	w := runWitness(t, audit.WitnessOptions{URL: srv.URL, Ledger: e.ledger, RetryMin: 5 * time.Millisecond, RetryMax: 5 * time.Millisecond})
	seed(t, e.store, 2)
	sealWith(t, e, audit.SealerOptions{Signer: forger, Publisher: w})
	waitFor(t, "the forged checkpoint refused twice", func() bool { return w.Failures() >= 2 && len(tw.refusals()) >= 2 })
	if len(tw.accepted()) != 0 || w.Pending() != 1 {
		t.Fatalf("accepted %d, pending %d: want the forged checkpoint refused and still pending", len(tw.accepted()), w.Pending())
	}
}

func TestWitnessOptions(t *testing.T) {
	t.Parallel()
	e := openSQLite(t)
	for _, o := range []audit.WitnessOptions{
		{URL: "ftp://witness.example", Ledger: e.ledger},
		{URL: "https://witness.example", Ledger: e.ledger, RetryMin: time.Second, RetryMax: time.Millisecond},
		{URL: "https://witness.example", Ledger: e.ledger, Queue: -1},
	} {
		if _, err := audit.NewWitness(o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
}

// TestWitnessMetrics: the poster's counters are a prometheus collector that a registry takes.
func TestWitnessMetrics(t *testing.T) {
	t.Parallel()
	e := openSQLite(t)
	w, err := audit.NewWitness(audit.WitnessOptions{URL: "http://127.0.0.1:1/add-checkpoint", Ledger: e.ledger})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(w)
	if err := w.PublishCheckpoint(context.Background(), audit.Checkpoint{Ordinal: 3, Note: "a note"}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		got[mf.GetName()] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
	}
	want := map[string]float64{"idlog_audit_witness_posted_total": 0, "idlog_audit_witness_failures_total": 0,
		"idlog_audit_witness_pending": 1, "idlog_audit_witness_dropped_total": 0}
	for name, v := range want {
		if g, ok := got[name]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, v)
		}
	}
}
