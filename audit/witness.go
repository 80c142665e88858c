package audit

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of WitnessOptions.
const (
	DefaultWitnessRetryMin = 200 * time.Millisecond
	DefaultWitnessRetryMax = 30 * time.Second
	DefaultWitnessTimeout  = 10 * time.Second
	DefaultWitnessQueue    = 10000
)

// WitnessOptions configure a Witness.
type WitnessOptions struct {
	// URL receives every signed checkpoint by POST (the C2SP tlog-witness add-checkpoint
	// endpoint, e.g. https://witness.example/add-checkpoint).
	URL string
	// Ledger serves the consistency proofs from the size the witness holds to each new one.
	Ledger *Ledger
	// Client does the requests; nil means a client with a Timeout of DefaultWitnessTimeout.
	Client *http.Client
	// RetryMin and RetryMax bound the doubling wait after a failed POST. 0 means the defaults.
	RetryMin, RetryMax time.Duration
	// Queue bounds the checkpoints waiting while the witness is unreachable; past it the oldest
	// waiting ones are dropped (the next POST's consistency proof still spans them). 0 means
	// DefaultWitnessQueue.
	Queue int
	// Logger receives failures. Nil discards them.
	Logger *slog.Logger
}

// Witness posts each signed checkpoint the sealer hands it to a witness outside idlog, in order,
// with a consistency proof from the last size the witness acknowledged (the C2SP tlog-witness
// add-checkpoint request):
//
//	old <size the witness holds>\n
//	<consistency proof hash, standard base64>\n   (zero or more)
//	\n
//	<signed checkpoint note>
//
// sent as text/plain. A 200 answer acknowledges the checkpoint; 409 Conflict with the witness's
// size in the body (text/x.tlog.size) makes the Witness resend from that size; anything else, or
// no answer, is a failure: logged, counted in idlog_audit_witness_failures_total, and retried with
// backoff. PublishCheckpoint only queues, so a slow or absent witness never holds up sealing.
// A 409 below the checkpoint's size (a witness that missed some, after a restart of idlog) puts
// the ledger's checkpoints it missed first, so it still receives every one, in order.
// Start runs the posting loop. A Witness is a prometheus.Collector of its counters.
type Witness struct {
	o WitnessOptions

	mu      sync.Mutex
	queue   []Checkpoint
	last    uint64 // the last ordinal queued
	wake    chan struct{}
	size    uint64 // the tree size the witness acknowledged
	knowSz  bool
	dropped uint64

	posted   prometheus.Counter
	failures prometheus.Counter
	pending  prometheus.GaugeFunc
	lost     prometheus.CounterFunc
	nfail    atomic.Uint64
}

var _ CheckpointPublisher = (*Witness)(nil)

// NewWitness returns a witness poster. A nil ledger is a wiring mistake and panics.
func NewWitness(o WitnessOptions) (*Witness, error) {
	if o.Ledger == nil {
		panic("audit: NewWitness needs a ledger")
	}
	if !strings.HasPrefix(o.URL, "http://") && !strings.HasPrefix(o.URL, "https://") {
		return nil, fmt.Errorf("audit: witness URL (%q) must be http:// or https://", o.URL)
	}
	switch {
	case o.RetryMin < 0 || o.RetryMax < 0:
		return nil, fmt.Errorf("audit: witness retry (%v, %v) cannot be negative", o.RetryMin, o.RetryMax)
	case o.Queue < 0:
		return nil, fmt.Errorf("audit: witness queue (%d) cannot be negative", o.Queue)
	}
	if o.RetryMin == 0 {
		o.RetryMin = DefaultWitnessRetryMin
	}
	if o.RetryMax == 0 {
		o.RetryMax = DefaultWitnessRetryMax
	}
	if o.RetryMax < o.RetryMin {
		return nil, fmt.Errorf("audit: witness retry max (%v) cannot be below retry min (%v)", o.RetryMax, o.RetryMin)
	}
	if o.Queue == 0 {
		o.Queue = DefaultWitnessQueue
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: DefaultWitnessTimeout}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Witness{
		o:    o,
		wake: make(chan struct{}, 1),
		posted: prometheus.NewCounter(prometheus.CounterOpts{Name: "idlog_audit_witness_posted_total",
			Help: "Signed audit checkpoints the witness acknowledged."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "idlog_audit_witness_failures_total",
			Help: "POSTs of a signed audit checkpoint to the witness that failed (each is retried)."}),
	}
	w.pending = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "idlog_audit_witness_pending",
		Help: "Signed audit checkpoints waiting for the witness."}, func() float64 { return float64(w.Pending()) })
	w.lost = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "idlog_audit_witness_dropped_total",
		Help: "Checkpoints dropped unposted because too many waited (the next POST's consistency proof spans them)."},
		func() float64 { w.mu.Lock(); defer w.mu.Unlock(); return float64(w.dropped) })
	return w, nil
}

// PublishCheckpoint queues c for the witness and returns at once. A checkpoint without a
// signature, or one already queued, is skipped.
func (w *Witness) PublishCheckpoint(_ context.Context, c Checkpoint) error {
	if c.Note == "" {
		return nil
	}
	w.mu.Lock()
	if c.Ordinal > w.last {
		w.last = c.Ordinal
		w.queue = append(w.queue, c)
		if over := len(w.queue) - w.o.Queue; over > 0 {
			w.queue = append(w.queue[:0], w.queue[over:]...)
			w.dropped += uint64(over)
		}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// Pending is how many checkpoints wait for the witness.
func (w *Witness) Pending() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.queue)
}

// Run posts the queued checkpoints, in order, until ctx ends; then it returns nil.
func (w *Witness) Run(ctx context.Context) error {
	wait := w.o.RetryMin
	for {
		w.mu.Lock()
		var next *Checkpoint
		if len(w.queue) > 0 {
			next = &w.queue[0]
		}
		w.mu.Unlock()
		if next == nil {
			select {
			case <-ctx.Done():
				return nil
			case <-w.wake:
				continue
			}
		}
		err := w.post(ctx, *next)
		if err == nil {
			wait = w.o.RetryMin
			continue
		}
		if ctx.Err() != nil {
			return nil
		}
		w.failures.Inc()
		w.nfail.Add(1)
		w.o.Logger.Warn("audit: post checkpoint to the witness", "ordinal", next.Ordinal, "url", w.o.URL, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, w.o.RetryMax)
	}
}

// errWitnessConflict: the witness holds another size than the request said; retry from it.
var errWitnessConflict = errors.New("audit: the witness holds another tree size")

// post sends c (the queue's head) and pops it once the witness acknowledged it or already
// holds a larger tree.
func (w *Witness) post(ctx context.Context, c Checkpoint) error {
	for range 3 { // a 409 tells the witness's size: resend once from it (and once more if it moved)
		w.mu.Lock()
		old, know := w.size, w.knowSz
		w.mu.Unlock()
		if know && old >= c.Ordinal {
			w.pop(c.Ordinal)
			return nil
		}
		var body bytes.Buffer
		fmt.Fprintf(&body, "old %d\n", old)
		if old > 0 {
			p, err := w.o.Ledger.ConsistencyProof(ctx, old, c.Ordinal)
			if err != nil {
				return fmt.Errorf("consistency proof from %d to %d: %w", old, c.Ordinal, err)
			}
			for _, h := range p.Hashes {
				body.WriteString(base64.StdEncoding.EncodeToString(h[:]))
				body.WriteByte('\n')
			}
		}
		body.WriteByte('\n')
		body.WriteString(c.Note)
		err := w.send(ctx, &body)
		var size uint64
		switch {
		case err == nil:
			size = c.Ordinal
			w.posted.Inc()
		case errors.As(err, new(sizeConflict)):
			size = uint64(err.(sizeConflict))
			if size > c.Ordinal {
				// The witness is ahead of this ledger: it saw a larger tree of this log.
				return fmt.Errorf("the witness holds size %d, beyond checkpoint %d", size, c.Ordinal)
			}
			// It missed checkpoints (idlog restarted, or another replica sealed them): they go
			// first, from the ledger, so that the witness sees every one in order.
			missed, err := w.missed(ctx, size, c.Ordinal)
			if err != nil {
				return err
			}
			w.mu.Lock()
			w.size, w.knowSz = size, true
			if len(missed) > 0 && len(w.queue) > 0 && w.queue[0].Ordinal == c.Ordinal {
				w.queue = append(missed, w.queue...)
				if over := len(w.queue) - w.o.Queue; over > 0 {
					w.queue = w.queue[over:]
					w.dropped += uint64(over)
				}
				w.mu.Unlock()
				return nil // the loop posts the new head
			}
			w.mu.Unlock()
		default:
			return err
		}
		w.mu.Lock()
		w.size, w.knowSz = size, true
		w.mu.Unlock()
		if size == c.Ordinal {
			w.pop(c.Ordinal)
			return nil
		}
	}
	return errWitnessConflict
}

// missed reads the signed checkpoints of the ledger of a size in (after, before).
func (w *Witness) missed(ctx context.Context, after, before uint64) ([]Checkpoint, error) {
	var out []Checkpoint
	for c, err := range w.o.Ledger.Checkpoints(ctx, after, before-1) {
		if err != nil {
			return nil, err
		}
		if c.Note != "" {
			out = append(out, c)
		}
	}
	return out, nil
}

func (w *Witness) pop(ordinal uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) > 0 && w.queue[0].Ordinal == ordinal {
		w.queue = w.queue[1:]
	}
}

// sizeConflict is a 409 answer: the size the witness holds.
type sizeConflict uint64

func (s sizeConflict) Error() string {
	return fmt.Sprintf("audit: the witness holds tree size %d", uint64(s))
}

func (w *Witness) send(ctx context.Context, body io.Reader) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := w.o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusOK:
		return nil
	case http.StatusConflict:
		n, err := strconv.ParseUint(strings.TrimSpace(string(msg)), 10, 64)
		if err != nil {
			return fmt.Errorf("witness answered 409 without a tree size: %q", msg)
		}
		return sizeConflict(n)
	default:
		return fmt.Errorf("witness answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
}

// Describe implements prometheus.Collector.
func (w *Witness) Describe(ch chan<- *prometheus.Desc) {
	w.posted.Describe(ch)
	w.failures.Describe(ch)
	w.pending.Describe(ch)
	w.lost.Describe(ch)
}

// Collect implements prometheus.Collector.
func (w *Witness) Collect(ch chan<- prometheus.Metric) {
	w.posted.Collect(ch)
	w.failures.Collect(ch)
	w.pending.Collect(ch)
	w.lost.Collect(ch)
}

// Failures is how many POSTs failed so far.
func (w *Witness) Failures() uint64 { return w.nfail.Load() }
