package audit_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/eventstore"
)

func export(t testing.TB, s eventstore.Store, from uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := audit.Export(context.Background(), s, &buf, from); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func importInto(t testing.TB, s eventstore.Store, file []byte) (audit.ExportSummary, error) {
	t.Helper()
	return audit.Import(context.Background(), s, bytes.NewReader(file), audit.ImportOptions{BatchSize: 7, Keys: audit.UserKeys(nil)})
}

// TestExportImportRoundTrip moves a history to a fresh store of every backend, from every
// backend, and exports it again: the bytes must be the same, and so the ids, versions, order,
// metadata, times and chain.
func TestExportImportRoundTrip(t *testing.T) {
	t.Parallel()
	for _, from := range backends(t) {
		for _, to := range backends(t) {
			t.Run(from.name+"->"+to.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				src := from.open(t)
				users := seed(t, src.store, 15)
				srcLog := logOf(t, src.store)
				first := export(t, src.store, 0)
				if n := bytes.Count(first, []byte("\n")); n != len(srcLog) {
					t.Fatalf("export has %d lines for %d events", n, len(srcLog))
				}

				dst := to.open(t)
				sum, err := importInto(t, dst.store, first)
				if err != nil {
					t.Fatal(err)
				}
				if sum.Events != uint64(len(srcLog)) || sum.FirstOrdinal != 1 {
					t.Fatalf("imported %+v, want %d events", sum, len(srcLog))
				}
				again := export(t, dst.store, 0)
				if !bytes.Equal(first, again) {
					t.Fatalf("export after import differs:\n%s\n---\n%s", first, again)
				}

				dstLog := logOf(t, dst.store)
				for i := range srcLog {
					a, b := srcLog[i], dstLog[i]
					a.GlobalPosition, b.GlobalPosition = 0, 0
					if a.ID != b.ID || a.StreamID != b.StreamID || a.StreamVersion != b.StreamVersion || a.Type != b.Type ||
						a.SchemaVersion != b.SchemaVersion || !bytes.Equal(a.Data, b.Data) || a.Metadata != b.Metadata || !a.RecordedAt.Equal(b.RecordedAt) {
						t.Fatalf("event %d differs:\n%+v\n%+v", i+1, srcLog[i], dstLog[i])
					}
				}
				// Sealing the imported store gives the chain the export carried.
				tail := catchUp(t, dst)
				if tail.Chain != sum.Head {
					t.Fatalf("imported store seals to %s, the export's head is %s", tail.Chain, sum.Head)
				}

				// New appends continue the imported streams at the right version.
				u := users[0]
				if _, err := dst.store.Append(ctx, eventstore.Append{Stream: u.uid.Stream(), Expected: eventstore.Exactly(1),
					Events: []eventstore.NewEvent{{Type: "UserDeleted", SchemaVersion: 1, Data: []byte(`{}`)}}}); err != nil {
					t.Fatalf("append after import: %v", err)
				}

				// The claims the users' events imply are rebuilt: current emails and usernames
				// are taken, released ones are free.
				owners := dst.store.(eventstore.KeyOwners)
				for _, u := range users {
					if s, err := owners.KeyOwner(ctx, "email:"+u.email); err != nil || s != u.uid.Stream() {
						t.Fatalf("email %s owned by %q (%v), want %s", u.email, s, err, u.uid.Stream())
					}
					if strings.HasPrefix(u.email, "new") {
						if _, err := owners.KeyOwner(ctx, "email:"+strings.TrimPrefix(u.email, "new")); !errors.Is(err, eventstore.ErrKeyNotClaimed) {
							t.Fatalf("old email of %s still claimed: %v", u.uid, err)
						}
					}
				}
				_, err = dst.store.Append(ctx, eventstore.Append{Stream: "user-ID00000000AB", Expected: eventstore.NoStream,
					Events: []eventstore.NewEvent{{Type: "X", SchemaVersion: 1, Data: []byte(`{}`)}}, Claim: []string{"email:" + users[1].email}})
				if !errors.Is(err, eventstore.ErrKeyTaken) {
					t.Fatalf("claiming an imported email: %v, want ErrKeyTaken", err)
				}

			})
		}
	}
}

func TestExportFrom(t *testing.T) {
	t.Parallel()
	e := openSQLite(t)
	seed(t, e.store, 5)
	all := bytes.SplitAfter(export(t, e.store, 0), []byte("\n"))
	part := bytes.SplitAfter(export(t, e.store, 4), []byte("\n"))
	if !slices.EqualFunc(all[3:], part, bytes.Equal) {
		t.Fatalf("export from ordinal 4 is not the tail of the whole export:\n%s\n---\n%s", all[3:], part)
	}
	// A partial export cannot be imported: the history would start in the middle.
	_, err := importInto(t, openSQLite(t).store, bytes.Join(part, nil))
	var le *audit.LineError
	if !errors.Is(err, audit.ErrBadExport) || !errors.As(err, &le) || le.Line != 1 {
		t.Fatalf("import of a partial export: %v, want ErrBadExport at line 1", err)
	}
}

func TestImportIntoNonEmptyStoreIsRefused(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			src := b.open(t)
			seed(t, src.store, 3)
			file := export(t, src.store, 0)

			dst := b.open(t)
			seed(t, dst.store, 1)
			before := logOf(t, dst.store)
			if _, err := importInto(t, dst.store, file); !errors.Is(err, audit.ErrStoreNotEmpty) {
				t.Fatalf("import into a non-empty store: %v, want ErrStoreNotEmpty", err)
			}
			if after := logOf(t, dst.store); len(after) != len(before) {
				t.Fatalf("refused import wrote %d events", len(after)-len(before))
			}
			// The store itself refuses too, for a caller that skips the check.
			imp := dst.store.(audit.Importer)
			_, err := imp.ImportEvents(context.Background(), 0, logOf(t, src.store)[:1], nil, nil)
			if !errors.Is(err, eventstore.ErrConcurrency) {
				t.Fatalf("ImportEvents after 0 into a non-empty log: %v, want ErrConcurrency", err)
			}
		})
	}
}

func TestTamperedExportIsRefused(t *testing.T) {
	t.Parallel()
	src := openSQLite(t)
	seed(t, src.store, 6)
	file := export(t, src.store, 0)
	lines := bytes.SplitAfter(file, []byte("\n"))

	ipLine := 2
	for !bytes.Contains(lines[ipLine], []byte("192.0.2.7")) {
		ipLine++
	}
	edit := func(f func(lines [][]byte)) []byte {
		c := make([][]byte, len(lines))
		for i := range lines {
			c[i] = bytes.Clone(lines[i])
		}
		f(c)
		return bytes.Join(c, nil)
	}
	cases := []struct {
		name string
		file []byte
		want error
		line uint64
	}{
		{"data byte changed", edit(func(l [][]byte) { l[4] = bytes.Replace(l[4], []byte("example.com"), []byte("example.org"), 1) }), audit.ErrChainBroken, 5},
		{"metadata changed", edit(func(l [][]byte) { l[ipLine] = bytes.Replace(l[ipLine], []byte("192.0.2.7"), []byte("192.0.2.8"), 1) }), audit.ErrChainBroken, uint64(ipLine + 1)},
		{"line deleted", edit(func(l [][]byte) { l[3] = nil }), audit.ErrBadExport, 4},
		{"lines swapped", edit(func(l [][]byte) { l[1], l[2] = l[2], l[1] }), audit.ErrBadExport, 2},
		{"unknown field", edit(func(l [][]byte) { l[0] = bytes.Replace(l[0], []byte(`{"ordinal"`), []byte(`{"x":1,"ordinal"`), 1) }), audit.ErrBadExport, 1},
		{"not JSON", edit(func(l [][]byte) { l[5] = []byte("hello\n") }), audit.ErrBadExport, 6},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := openSQLite(t)
			_, err := importInto(t, dst.store, tc.file)
			var le *audit.LineError
			if !errors.Is(err, tc.want) || !errors.As(err, &le) || le.Line != tc.line {
				t.Fatalf("import: %v; want %v at line %d", err, tc.want, tc.line)
			}
			if n := len(logOf(t, dst.store)); n != 0 {
				t.Fatalf("a refused file wrote %d events", n)
			}
		})
	}
	if _, err := audit.CheckExport(context.Background(), bytes.NewReader(file)); err != nil {
		t.Fatalf("the untouched file: %v", err)
	}
}

// An export whose line 10 holds what the log refuses (0xFF, or a \u0000 escape, in the data, as
// an older idlog stored on SQLite; a stream version with a gap) is refused whole: the import names
// the line and the target store stays empty. Before, SQLite took the bytes as they were, and
// PostgreSQL failed half-way and kept the batches before the bad one.
func TestImportOfBadLineWritesNothing(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		tamper string
		arg    any
		reason string
	}{
		"0xFF":        {`UPDATE events SET data = ? WHERE position = 10`, "{\"data\":\"\xff\"}", "not valid UTF-8 or holds NUL"},
		"\\u0000":     {`UPDATE events SET data = ? WHERE position = 10`, `{"data":"a\u0000b"}`, "not valid UTF-8 or holds NUL"},
		"version gap": {`UPDATE events SET stream_version = stream_version + 100 WHERE position >= ?`, 10, "is version"},
	} {
		for _, to := range backends(t) {
			t.Run(name+"->"+to.name, func(t *testing.T) {
				t.Parallel()
				src := openSQLite(t)
				seed(t, src.store, 15)
				// Versions shifted from event 10 on: the first gap is at line 10.
				src.exec(t, c.tamper, c.arg)
				file := export(t, src.store, 0)

				dst := to.open(t)
				_, err := importInto(t, dst.store, file)
				var le *audit.LineError
				if !errors.Is(err, audit.ErrBadExport) || !errors.As(err, &le) || le.Line != 10 || !strings.Contains(le.Reason, c.reason) {
					t.Fatalf("import: %v, want ErrBadExport at line 10: %s", err, c.reason)
				}
				if got := logOf(t, dst.store); len(got) != 0 {
					t.Fatalf("the refused import left %d events in the store", len(got))
				}
				// The store refuses such text too, for a caller that skips the check.
				if c.reason != "is version" {
					bad := eventstore.Event{ID: uuid.New(), StreamID: "user-ID0000000001", StreamVersion: 1, Type: "UserDataUpdated",
						SchemaVersion: 1, Data: []byte(c.arg.(string)), RecordedAt: time.Now().UTC()}
					_, err := dst.store.(audit.Importer).ImportEvents(context.Background(), 0, []eventstore.Event{bad}, nil, nil)
					if !errors.Is(err, eventstore.ErrInvalidText) {
						t.Fatalf("ImportEvents of %q: %v, want ErrInvalidText", bad.Data, err)
					}
					if got := logOf(t, dst.store); len(got) != 0 {
						t.Fatalf("ImportEvents stored %d events with invalid text", len(got))
					}
				}
			})
		}
	}
}
