package eventbus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/idlog/idlog/eventbus"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/postgres"
)

// benchEvents is how many events one throughput run relays: IDLOG_RELAY_BENCH_EVENTS, default
// 20,000.
func benchEvents(b *testing.B) int {
	n := 20000
	if v := os.Getenv("IDLOG_RELAY_BENCH_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 10 {
			b.Fatalf("IDLOG_RELAY_BENCH_EVENTS=%q: want a number of at least 10", v)
		}
	}
	return n
}

// benchWindow bounds the publishes awaiting acknowledgement, for the relay and the baseline alike.
const benchWindow = 256

// BenchmarkRelayThroughput relays IDLOG_RELAY_BENCH_EVENTS stored events into a local JetStream stream on file
// storage, and, in the same iteration, publishes the very same messages (body, subject, headers)
// straight from memory with async publishes under the same window: the raw baseline, its messages
// signed beforehand as the relay signs them (a signature per tree of 16). A second baseline,
// signed raw, publishes them the same way but signs each one on its own (Ed25519, the wire format
// before batch signatures) just before publishing it: what is left between it and the raw one is
// a signature per message. The relay also reads the events from the store and
// encodes them. Metrics: events/s of each, the relay's ratio to both, the process's CPU time per
// event of each (the embedded server's included), and the ratios that CPU time alone would allow.
//
//	IDLOG_RELAY_BENCH_EVENTS=600000 go test -run '^$' -bench RelayThroughput -benchtime 1x ./eventbus/
func BenchmarkRelayThroughput(b *testing.B) {
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			events := fillStore(b, s, benchEvents(b))
			srv := startServer(b, b.TempDir(), 0)
			nc := connect(b, srv.ClientURL())
			js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(benchWindow))
			if err != nil {
				b.Fatal(err)
			}
			client := newClient(b, srv.ClientURL(), nil)
			last := events[len(events)-1].GlobalPosition

			// Wall time, and the process's CPU time (the server runs in it too): on a shared machine
			// the CPU time per event is the steadier figure.
			var raw, signedRaw, relayed, rawCPU, signedRawCPU, relayCPU time.Duration
			// Time the process's threads were ready to run but waited for a core (other processes
			// held them): the share of a rate that the machine, not the code, decided.
			var rawWait, signedRawWait, relayWait time.Duration
			i := 0
			for b.Loop() {
				i++
				b.StopTimer()
				msgs := rawMessages(events)
				unsigned := unsignedMessages(events)
				only(b, js, "RAW", "raw.>")
				b.StartTimer()

				c0, w0 := cpuTime(b), runqueueWait()
				raw += publishRaw(b, js, msgs)
				c1, w1 := cpuTime(b), runqueueWait()
				rawCPU += c1 - c0
				rawWait += w1 - w0
				b.StopTimer()
				only(b, js, "SRAW", "sraw.>")
				b.StartTimer()
				c1, w1 = cpuTime(b), runqueueWait()
				signedRaw += publishSignedRaw(b, js, unsigned)
				c2, w2 := cpuTime(b), runqueueWait()
				signedRawCPU += c2 - c1
				signedRawWait += w2 - w1
				b.StopTimer()
				only(b, js, eventbus.EventsStream, eventbus.EventsSubjects)
				b.StartTimer()
				c1, w1 = cpuTime(b), runqueueWait()

				o := relayOptions(s, client)
				o.CheckpointName = fmt.Sprintf("bench-%d", i)
				o.CheckpointInterval = 100 * time.Millisecond
				o.LagInterval = time.Minute
				o.Window = benchWindow
				r, err := eventbus.NewRelay(o)
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				begin := time.Now()
				go func() { done <- r.Run(ctx) }()
				for r.Status().Position != last {
					time.Sleep(time.Millisecond)
				}
				relayed += time.Since(begin)
				relayCPU += cpuTime(b) - c1
				relayWait += runqueueWait() - w1
				b.StopTimer()
				cancel()
				<-done
				if st := r.Status(); st.Published != uint64(len(events)) {
					b.Fatalf("relay published %d, want %d", st.Published, len(events))
				}
				b.StartTimer()
			}
			rawRate := float64(i*len(events)) / raw.Seconds()
			signedRawRate := float64(i*len(events)) / signedRaw.Seconds()
			relayRate := float64(i*len(events)) / relayed.Seconds()
			b.ReportMetric(rawRate, "raw-events/s")
			b.ReportMetric(signedRawRate, "signed-raw-events/s")
			b.ReportMetric(relayRate, "relay-events/s")
			b.ReportMetric(100*relayRate/rawRate, "relay/raw-%")
			b.ReportMetric(100*relayRate/signedRawRate, "relay/signed-raw-%")
			n := float64(i * len(events))
			b.ReportMetric(float64(rawCPU.Microseconds())/n, "raw-cpu-µs/event")
			b.ReportMetric(float64(signedRawCPU.Microseconds())/n, "signed-raw-cpu-µs/event")
			b.ReportMetric(float64(relayCPU.Microseconds())/n, "relay-cpu-µs/event")
			// The ratios the rates would have if CPU time alone bounded them (a busy machine):
			// steadier than the rates when other processes share the cores.
			b.ReportMetric(100*float64(rawCPU)/float64(relayCPU), "cpu-bound-relay/raw-%")
			b.ReportMetric(100*float64(signedRawCPU)/float64(relayCPU), "cpu-bound-relay/signed-raw-%")
			// On average, how many of the process's threads waited for a core (Linux; else 0).
			b.ReportMetric(rawWait.Seconds()/raw.Seconds(), "raw-threads-waiting")
			b.ReportMetric(signedRawWait.Seconds()/signedRaw.Seconds(), "signed-raw-threads-waiting")
			b.ReportMetric(relayWait.Seconds()/relayed.Seconds(), "relay-threads-waiting")
		})
	}
}

// fillStore stores n events, ten per user, through the store's importer (much faster than n/10
// appends, so that a run of 600,000 events fills in seconds).
func fillStore(b *testing.B, s eventstore.Store, n int) []eventstore.Event {
	b.Helper()
	imp, ok := s.(interface {
		ImportEvents(ctx context.Context, after uint64, events []eventstore.Event, claims, releases [][]string) (uint64, error)
	})
	if !ok {
		b.Fatalf("%T imports no events", s)
	}
	at := time.Now().UTC().Truncate(time.Microsecond)
	var last uint64
	batch := make([]eventstore.Event, 0, eventstore.MaxEventsPerAppend)
	for i := range n {
		u, j := i/10, i%10
		uid := fmt.Sprintf("ID%010X", u)
		e := eventstore.Event{
			ID: uuid.Must(uuid.NewV7()), StreamID: "user-" + uid, StreamVersion: uint64(j + 1),
			Type: "UserDataUpdated", SchemaVersion: 1,
			Data:       json.RawMessage(fmt.Sprintf(`{"data":{"language":"en","n":%d}}`, j)),
			Metadata:   eventstore.Metadata{ActorUID: uid, CorrelationID: uuid.NewString()},
			RecordedAt: at.Add(time.Duration(i) * time.Microsecond),
		}
		if j == 0 {
			e.Type, e.Metadata.ActorUID = "UserRegistered", ""
			e.Data = json.RawMessage(fmt.Sprintf(`{"uid":%q,"email":"user%d@example.com","password_hash":"$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA","role":"member"}`, uid, u))
		}
		batch = append(batch, e)
		if len(batch) == cap(batch) || i == n-1 {
			var err error
			if last, err = imp.ImportEvents(context.Background(), last, batch, nil, nil); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if pg, ok := s.(*postgres.Store); ok {
		// A table filled in one go has no planner statistics until autovacuum analyzes it;
		// without them the store's page query scans and sorts the whole table per page.
		if _, err := pg.DB().Exec(`ANALYZE events`); err != nil {
			b.Fatal(err)
		}
	}
	return storedEvents(b, s)
}

// rawMessages are the relay's messages for events, on raw.> instead of idlog.events.>: their
// bodies signed as the relay signs them, a tree at a time.
func rawMessages(events []eventstore.Event) []*nats.Msg {
	out := make([]*nats.Msg, len(events))
	bodies := eventbus.ExportEncodeBatch(testSigner, eventbus.DefaultSource, events)
	for i, e := range events {
		m := &nats.Msg{
			Subject: "raw." + eventbus.Subject(e),
			Data:    bodies[i],
			Header:  nats.Header{"Nats-Msg-Id": {e.ID.String()}, "Nats-Expected-Stream": {"RAW"}},
		}
		if i > 0 {
			m.Header["Nats-Expected-Last-Msg-Id"] = []string{events[i-1].ID.String()}
		}
		out[i] = m
	}
	return out
}

// unsignedMessages are the relay's messages for events, on sraw.> instead of idlog.events.>, with
// their bodies not yet signed: the parts a signature covers, up to the key id.
func unsignedMessages(events []eventstore.Event) []*nats.Msg {
	out := make([]*nats.Msg, len(events))
	for i, e := range events {
		m := &nats.Msg{
			Subject: "sraw." + eventbus.Subject(e),
			Data:    eventbus.ExportAppendUnsignedCloudEvent(nil, eventbus.DefaultSource, e),
			Header:  nats.Header{"Nats-Msg-Id": {e.ID.String()}, "Nats-Expected-Stream": {"SRAW"}},
		}
		if i > 0 {
			m.Header["Nats-Expected-Last-Msg-Id"] = []string{events[i-1].ID.String()}
		}
		out[i] = m
	}
	return out
}

// publishSignedRaw publishes msgs as publishRaw does, signing each body (key id and Ed25519
// signature, the relay's wire format) just before publishing it, and checks that the first one
// verifies.
func publishSignedRaw(b *testing.B, js jetstream.JetStream, msgs []*nats.Msg) time.Duration {
	b.Helper()
	took := publish(b, js, msgs, func(m *nats.Msg) { m.Data = eventbus.ExportSignBody(testSigner, m.Data) })
	if len(msgs) > 0 {
		if _, err := eventbus.VerifyEvent(testSigner.Keys(), "", msgs[0].Data); err != nil {
			b.Fatalf("signed raw message: %v", err)
		}
	}
	return took
}

// only leaves the server with one stream of the benchmark, name, new, empty and configured as
// the relay configures IDLOG_EVENTS: each phase publishes into a server that holds none of the
// other phases' messages. The relay, last, found the baselines' 2 × 600,000 messages and their
// duplicate-detection ids still held, where the raw baseline, first, had found an empty server.
func only(b *testing.B, js jetstream.JetStream, name, subjects string) {
	b.Helper()
	ctx := context.Background()
	for _, s := range []string{"RAW", "SRAW", eventbus.EventsStream} {
		if err := js.DeleteStream(ctx, s); err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
			b.Fatal(err)
		}
	}
	// The server may still be removing the files of the stream of the same name just deleted:
	// it then refuses the new one with a generic creation error (code 10049, "error creating
	// store for stream"), as it did once in CI. Try again for up to a second.
	for attempt := 0; ; attempt++ {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{
			Name: name, Subjects: []string{subjects}, Storage: jetstream.FileStorage, Retention: jetstream.LimitsPolicy,
			Discard: jetstream.DiscardOld, MaxMsgs: -1, MaxBytes: -1, Duplicates: 2 * time.Minute,
		})
		var apiErr *jetstream.APIError
		if err != nil && errors.As(err, &apiErr) && apiErr.ErrorCode == 10049 && attempt < 20 {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		return
	}
}

// publishRaw publishes msgs with async publishes and waits for every acknowledgement.
func publishRaw(b *testing.B, js jetstream.JetStream, msgs []*nats.Msg) time.Duration {
	b.Helper()
	return publish(b, js, msgs, nil)
}

// publish publishes msgs with async publishes, each after prepare (when given) within the timed
// loop, and waits for every acknowledgement.
func publish(b *testing.B, js jetstream.JetStream, msgs []*nats.Msg, prepare func(*nats.Msg)) time.Duration {
	b.Helper()
	begin := time.Now()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		if prepare != nil {
			prepare(m)
		}
		f, err := js.PublishMsgAsync(m)
		// As the relay does: a window that stays full past the client's stall wait (a loaded
		// machine) publishes nothing, and the message is published again.
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			f, err = js.PublishMsgAsync(m)
		}
		if err != nil {
			b.Fatal(err)
		}
		futures[i] = f
	}
	<-js.PublishAsyncComplete()
	took := time.Since(begin)
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			b.Fatalf("publish: %v", err)
		}
	}
	return took
}

// BenchmarkEndToEndLatency appends 1,000 events a second for 3 seconds, each a new user, while
// the relay runs and a JetStream consumer reads IDLOG_EVENTS, and reports the time from the
// start of each append to the consumer's receipt of its message.
//
//	go test -run '^$' -bench EndToEndLatency -benchtime 1x ./eventbus/
func BenchmarkEndToEndLatency(b *testing.B) {
	const (
		rate     = 1000
		duration = 3 * time.Second
		total    = int(rate * duration / time.Second)
	)
	for _, be := range backends() {
		b.Run(be.name, func(b *testing.B) {
			s := be.open(b)
			srv := startServer(b, b.TempDir(), 0)
			client := newClient(b, srv.ClientURL(), nil)
			var all []time.Duration
			for b.Loop() {
				_, stop := runRelay(b, relayOptions(s, client))
				probe := connect(b, srv.ClientURL())
				waitFor(b, 10*time.Second, "the stream", func() bool { return streamExists(probe) })

				var (
					mu   sync.Mutex
					sent = make(map[string]time.Time, total)
					lat  = make([]time.Duration, 0, total)
					got  = make(chan struct{})
					n    atomic.Int64
				)
				js, err := jetstream.New(connect(b, srv.ClientURL()))
				if err != nil {
					b.Fatal(err)
				}
				cons, err := js.OrderedConsumer(context.Background(), eventbus.EventsStream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverNewPolicy})
				if err != nil {
					b.Fatal(err)
				}
				cc, err := cons.Consume(func(m jetstream.Msg) {
					at := time.Now()
					var ce struct{ ID string }
					json.Unmarshal(m.Data(), &ce)
					mu.Lock()
					if t0, ok := sent[ce.ID]; ok {
						lat = append(lat, at.Sub(t0))
					}
					mu.Unlock()
					if n.Add(1) == int64(total) {
						close(got)
					}
				})
				if err != nil {
					b.Fatal(err)
				}

				ids := make([]uuid.UUID, total)
				for i := range ids {
					ids[i] = uuid.Must(uuid.NewV7())
				}
				start := time.Now()
				var wg sync.WaitGroup
				for i := range total {
					time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / rate)))
					wg.Add(1)
					go func() {
						defer wg.Done()
						id := ids[i]
						mu.Lock()
						sent[id.String()] = time.Now()
						mu.Unlock()
						if _, err := s.Append(context.Background(), eventstore.Append{
							Stream: "user-" + id.String(), Expected: eventstore.NoStream,
							Events: []eventstore.NewEvent{{ID: id, Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(`{"email":"a@example.com","role":"member"}`)}},
						}); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
				select {
				case <-got:
				case <-time.After(30 * time.Second):
					b.Fatalf("the consumer got %d of %d events", n.Load(), total)
				}
				cc.Stop()
				stop()
				b.ReportMetric(float64(total)/time.Since(start).Seconds(), "appends/s")
				mu.Lock()
				all = append(all, lat...)
				mu.Unlock()
			}
			slices.Sort(all)
			pct := func(p float64) float64 { return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000 }
			b.ReportMetric(pct(0.5), "p50-ms")
			b.ReportMetric(pct(0.99), "p99-ms")
			b.ReportMetric(pct(1), "max-ms")
		})
	}
}

// cpuTime is the CPU time the process used so far, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runqueueWait is how long the process's threads have waited for a core while ready to run, from
// Linux's /proc/self/task/*/schedstat (threads that ended no longer count); 0 elsewhere.
func runqueueWait() time.Duration {
	files, _ := filepath.Glob("/proc/self/task/*/schedstat")
	var total time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		fields := strings.Fields(string(b))
		if len(fields) < 2 {
			continue
		}
		if ns, err := strconv.ParseInt(fields[1], 10, 64); err == nil {
			total += time.Duration(ns)
		}
	}
	return total
}

func streamExists(nc *nats.Conn) bool {
	js, err := jetstream.New(nc)
	if err != nil {
		return false
	}
	_, err = js.Stream(context.Background(), eventbus.EventsStream)
	return err == nil
}
