package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

// Importer is an event store that can take a history as it is. eventstore/postgres and
// eventstore/sqlite implement it.
type Importer interface {
	// ImportEvents writes events at the end of the log, in the given order, keeping their ids,
	// streams, stream versions, types, schema versions, data, metadata and recorded_at; the store
	// gives them positions, increasing in that order. after is the position of the log's last
	// event the caller expects (0: an empty log); if the log ends elsewhere the call writes
	// nothing and fails with an error matching eventstore.ErrConcurrency. A stream version that
	// does not follow the stream's last one fails with eventstore.ErrInvalidAppend. claims[i] and
	// releases[i] (either may be nil) are the unique keys events[i] claims and releases for its
	// stream, released first; a claim takes the key from any holder, since the log's order is the
	// truth. The batch is written atomically. It returns the position of the last event written.
	ImportEvents(ctx context.Context, after uint64, events []eventstore.Event, claims, releases [][]string) (last uint64, err error)
}

// Errors of Import and CheckExport.
var (
	// ErrStoreNotEmpty: the store already holds events.
	ErrStoreNotEmpty = errors.New("audit: import needs an empty event store")
	// ErrImportUnsupported: the store does not implement Importer.
	ErrImportUnsupported = errors.New("audit: this event store cannot import a history")
	// ErrBadExport: a line is not a well-formed export Line, or ordinals do not run 1, 2, 3...
	ErrBadExport = errors.New("audit: not a valid export")
	// ErrChainBroken: a line's chain value is not the chain over the lines up to it: the file
	// was altered (or cut and spliced).
	ErrChainBroken = errors.New("audit: the export's chain does not hold")
)

// LineError says which line of an export is wrong. It matches ErrBadExport or ErrChainBroken.
type LineError struct {
	Line   uint64 // 1-based
	Reason string
	Err    error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("%v: line %d: %s", e.Err, e.Line, e.Reason)
}

func (e *LineError) Unwrap() error { return e.Err }

// maxLine bounds one line of an export, so a file without newlines cannot take all memory.
const maxLine = 64 << 20

// DefaultImportBatch is how many events one ImportEvents call writes when ImportOptions.BatchSize
// is 0.
const DefaultImportBatch = 1000

// ImportOptions configure Import.
type ImportOptions struct {
	// BatchSize bounds the events of one ImportEvents call (one transaction). 0 means
	// DefaultImportBatch; at most eventstore.MaxEventsPerAppend.
	BatchSize int
	// Keys, when set, says which unique keys each event claims and releases, so that the
	// imported store holds the claims the log implies (UserKeys knows the users' email and
	// username). Nil claims nothing.
	Keys func(e eventstore.Event) (claim, release []string, err error)
}

// readExport reads an export line by line, checks every line and the chain, and calls fn with
// each event and its chain value.
func readExport(ctx context.Context, r io.Reader, fn func(e eventstore.Event, l *Line) error) (ExportSummary, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	var sum ExportSummary
	var chain Chain
	var compact bytes.Buffer
	var buf []byte
	for n := uint64(1); ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return sum, err
			}
		}
		line, readErr := readLine(br, buf[:0])
		buf = line
		if readErr == io.EOF && len(line) == 0 {
			return sum, nil
		}
		if readErr != nil && readErr != io.EOF {
			return sum, fmt.Errorf("audit: read export line %d: %w", n, readErr)
		}
		bad := func(format string, args ...any) error {
			return &LineError{Line: n, Err: ErrBadExport, Reason: fmt.Sprintf(format, args...)}
		}
		var l Line
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return sum, bad("%v", err)
		}
		if _, err := dec.Token(); err != io.EOF {
			return sum, bad("more than one JSON value on the line")
		}
		e, err := eventOf(&l, &compact)
		if err != nil {
			return sum, bad("%v", err)
		}
		if l.Ordinal != chain.Ordinal()+1 {
			if n == 1 {
				return sum, bad("starts at ordinal %d: an import needs the whole history, from ordinal 1", l.Ordinal)
			}
			return sum, bad("ordinal %d follows ordinal %d", l.Ordinal, chain.Ordinal())
		}
		if _, h := chain.Add(e); h != l.Chain {
			return sum, &LineError{Line: n, Err: ErrChainBroken,
				Reason: fmt.Sprintf("event %s (ordinal %d): chain %s, the lines up to it give %s", l.EventID, l.Ordinal, l.Chain, h)}
		}
		if err := fn(e, &l); err != nil {
			return sum, err
		}
		if sum.FirstOrdinal == 0 {
			sum.FirstOrdinal = l.Ordinal
		}
		sum.Events++
		sum.LastOrdinal, sum.Head = l.Ordinal, l.Chain
		if readErr == io.EOF {
			return sum, nil
		}
	}
}

// readLine reads one line without its newline into buf; io.EOF comes with the last line if
// it has no newline, or alone at the end.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		chunk, err := br.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxLine {
			return nil, fmt.Errorf("line longer than %d bytes", maxLine)
		}
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		default:
			return buf, err
		}
	}
}

// eventOf checks a line's fields and returns its event (without a position).
func eventOf(l *Line, compact *bytes.Buffer) (eventstore.Event, error) {
	switch {
	case l.EventID == uuid.Nil:
		return eventstore.Event{}, errors.New("no event_id")
	case l.StreamID == "":
		return eventstore.Event{}, errors.New("no stream_id")
	case l.StreamVersion < 1:
		return eventstore.Event{}, errors.New("stream_version must be at least 1")
	case l.Type == "":
		return eventstore.Event{}, errors.New("no type")
	case l.SchemaVersion < 1:
		return eventstore.Event{}, errors.New("schema_version must be at least 1")
	case (l.Data == nil) == (l.DataBase64 == nil):
		return eventstore.Event{}, errors.New("exactly one of data and data_base64 must be set")
	}
	at, err := time.Parse(recordedAtLayout, l.RecordedAt)
	if err != nil || at.Format(recordedAtLayout) != l.RecordedAt {
		return eventstore.Event{}, fmt.Errorf("recorded_at %q is not RFC 3339 UTC with six fractional digits", l.RecordedAt)
	}
	data := []byte(l.Data)
	if l.DataBase64 != nil {
		data = l.DataBase64
	} else {
		// Lines that idlog writes carry data compact; anything else would not come back as it was.
		compact.Reset()
		if err := json.Compact(compact, data); err != nil || !bytes.Equal(compact.Bytes(), data) {
			return eventstore.Event{}, errors.New("data is not compact JSON")
		}
	}
	if !json.Valid(data) {
		return eventstore.Event{}, errors.New("data is not valid JSON")
	}
	e := eventstore.Event{
		ID: l.EventID, StreamID: l.StreamID, StreamVersion: l.StreamVersion,
		Type: l.Type, SchemaVersion: l.SchemaVersion, Data: data, Metadata: l.Metadata,
		RecordedAt: at,
	}
	// What the log refuses to append it must not take in through an import either (PostgreSQL
	// would fail half-way, SQLite would keep text no reader can decode).
	if err := e.CheckText(); err != nil {
		return eventstore.Event{}, err
	}
	return e, nil
}

// CheckExport reads a whole export and checks it: every line well-formed, ordinals 1, 2, 3...
// without a gap, and the chain. It writes nothing.
func CheckExport(ctx context.Context, r io.Reader) (ExportSummary, error) {
	return readExport(ctx, r, func(eventstore.Event, *Line) error { return nil })
}

// Import writes the export r into store, which must be empty and implement Importer. It reads r
// twice: first it checks the whole file, every line as CheckExport does and everything the store
// would refuse (a stream version that does not follow the stream's last, an event id twice, text
// that is not valid UTF-8 or holds NUL, unique keys o.Keys cannot tell), so that a bad line makes
// the import fail with its line number (a *LineError) before anything is written and the store
// stays empty; then it writes the file in batches, checking it again as it goes. Only a failure
// of the store itself (a lost connection, a full disk) can still stop it half-way, and the error
// then says how many events the store holds. Positions are the new store's own; everything else,
// the ordinals and so the chain, are kept: an export of the imported store is byte for byte the
// file imported.
//
// Unique keys are not in the log: o.Keys rebuilds those the events imply. Claims that only a
// command's idempotency key made are not rebuilt: a request retried across the move with the
// same Idempotency-Key runs again.
func Import(ctx context.Context, store eventstore.Store, r io.ReadSeeker, o ImportOptions) (ExportSummary, error) {
	imp, ok := store.(Importer)
	if !ok {
		return ExportSummary{}, fmt.Errorf("%w (%T)", ErrImportUnsupported, store)
	}
	if o.BatchSize < 0 || o.BatchSize > eventstore.MaxEventsPerAppend {
		return ExportSummary{}, fmt.Errorf("audit: import batch size (%d) must be between 1 and %d", o.BatchSize, eventstore.MaxEventsPerAppend)
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultImportBatch
	}
	if err := checkEmpty(ctx, store); err != nil {
		return ExportSummary{}, err
	}
	start, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return ExportSummary{}, fmt.Errorf("audit: import: %w", err)
	}
	checked, err := checkImport(ctx, r, o)
	if err != nil {
		return ExportSummary{}, err
	}
	if _, err := r.Seek(start, io.SeekStart); err != nil {
		return ExportSummary{}, fmt.Errorf("audit: import: %w", err)
	}

	var (
		last     uint64
		written  uint64
		batch    = make([]eventstore.Event, 0, o.BatchSize)
		claims   = make([][]string, 0, o.BatchSize)
		releases = make([][]string, 0, o.BatchSize)
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		pos, err := imp.ImportEvents(ctx, last, batch, claims, releases)
		if err != nil {
			if errors.Is(err, eventstore.ErrConcurrency) {
				if written == 0 {
					return fmt.Errorf("%w: %w", ErrStoreNotEmpty, err)
				}
				return fmt.Errorf("audit: import: the log changed during the import, after %d events: %w", written, err)
			}
			return fmt.Errorf("audit: import: after %d events: %w", written, err)
		}
		last = pos
		written += uint64(len(batch))
		clear(batch)
		batch, claims, releases = batch[:0], claims[:0], releases[:0]
		return nil
	}
	sum, err := readExport(ctx, r, func(e eventstore.Event, _ *Line) error {
		var c, rel []string
		if o.Keys != nil {
			var err error
			if c, rel, err = o.Keys(e); err != nil {
				return fmt.Errorf("audit: import: unique keys of event %s: %w", e.ID, err)
			}
		}
		batch, claims, releases = append(batch, e), append(claims, c), append(releases, rel)
		if len(batch) == o.BatchSize {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err == nil && sum != checked {
		err = fmt.Errorf("audit: import: the file changed while it was imported (checked %d events, wrote %d)", checked.Events, sum.Events)
	}
	if err != nil && written > 0 {
		return sum, fmt.Errorf("%w (the store now holds the first %d events of the file)", err, written)
	}
	return sum, err
}

// checkImport reads the whole export as CheckExport does, and checks what the store would refuse
// of it, so that Import writes nothing of a file it cannot write whole. Line n holds ordinal n
// (readExport makes sure of it), so a line is named by its ordinal.
func checkImport(ctx context.Context, r io.Reader, o ImportOptions) (ExportSummary, error) {
	versions := map[string]uint64{}
	// 16 bytes an event (and the map's own): a few dozen MB for a million events.
	ids := map[uuid.UUID]struct{}{}
	return readExport(ctx, r, func(e eventstore.Event, l *Line) error {
		bad := func(format string, args ...any) error {
			return &LineError{Line: l.Ordinal, Err: ErrBadExport, Reason: fmt.Sprintf(format, args...)}
		}
		if _, dup := ids[e.ID]; dup {
			return bad("event %s appears twice", e.ID)
		}
		ids[e.ID] = struct{}{}
		if want := versions[e.StreamID] + 1; e.StreamVersion != want {
			return bad("event %s is version %d of stream %q, want %d", e.ID, e.StreamVersion, e.StreamID, want)
		}
		versions[e.StreamID] = e.StreamVersion
		if o.Keys != nil {
			claim, release, err := o.Keys(e)
			if err != nil {
				return bad("unique keys of event %s: %v", e.ID, err)
			}
			for _, k := range append(claim, release...) {
				if k == "" || eventstore.CheckText(k) != nil {
					return bad("event %s implies the unique key %q, which the store cannot hold", e.ID, k)
				}
			}
		}
		return nil
	})
}

func checkEmpty(ctx context.Context, store eventstore.Store) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for e, err := range store.ReadAll(ctx, 0, eventstore.Filter{}) {
		if err != nil {
			return fmt.Errorf("audit: import: read the target store: %w", err)
		}
		return fmt.Errorf("%w: it holds event %s at position %d", ErrStoreNotEmpty, e.ID, e.GlobalPosition)
	}
	return nil
}
