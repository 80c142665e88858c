package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/idlog/idlog/eventstore"
)

// Line is one event of an export: every field of the envelope except the backend's position,
// plus its ordinal and chain value. An export is one Line per text line (NDJSON), in ordinal
// order. Data holds the stored JSON as it is when its bytes are compact JSON (what idlog stores);
// any other bytes travel exactly in DataBase64 instead. Exactly one of the two is set.
type Line struct {
	Ordinal       uint64              `json:"ordinal"`
	EventID       uuid.UUID           `json:"event_id"`
	StreamID      string              `json:"stream_id"`
	StreamVersion uint64              `json:"stream_version"`
	Type          string              `json:"type"`
	SchemaVersion int                 `json:"schema_version"`
	RecordedAt    string              `json:"recorded_at"` // RFC 3339, UTC, microseconds
	Metadata      eventstore.Metadata `json:"metadata"`
	Data          json.RawMessage     `json:"data,omitempty"`
	DataBase64    []byte              `json:"data_base64,omitempty"`
	Chain         Hash                `json:"chain"`
}

// ErrNotExportable: an event holds bytes an export cannot carry faithfully (text that is not
// UTF-8 in a field other than data).
var ErrNotExportable = errors.New("audit: event cannot be exported faithfully")

// lineOf builds the export line of e at ordinal with chain value h.
func lineOf(ord uint64, e eventstore.Event, h Hash, compact *bytes.Buffer) (Line, error) {
	m := e.Metadata
	for _, s := range [...]string{e.StreamID, e.Type, m.ActorUID, m.ActorRole, m.IP, m.UserAgent, m.CorrelationID, m.CausationID, m.IdempotencyKey} {
		if !utf8.ValidString(s) {
			return Line{}, fmt.Errorf("%w: event %s (ordinal %d) has a field that is not UTF-8", ErrNotExportable, e.ID, ord)
		}
	}
	l := Line{
		Ordinal: ord, EventID: e.ID, StreamID: e.StreamID, StreamVersion: e.StreamVersion,
		Type: e.Type, SchemaVersion: e.SchemaVersion,
		RecordedAt: e.RecordedAt.UTC().Format(recordedAtLayout),
		Metadata:   m, Chain: h,
	}
	// The encoder rewrites a RawMessage into compact form; only compact bytes survive it as
	// they are.
	compact.Reset()
	if json.Compact(compact, e.Data) == nil && bytes.Equal(compact.Bytes(), e.Data) {
		l.Data = e.Data
	} else {
		l.DataBase64 = e.Data
	}
	return l, nil
}

// ExportSummary tells what an export holds.
type ExportSummary struct {
	Events       uint64 `json:"events"`        // lines
	FirstOrdinal uint64 `json:"first_ordinal"` // 0 when empty
	LastOrdinal  uint64 `json:"last_ordinal"`
	Head         Hash   `json:"head"` // chain value of the last line
}

// Export writes the log's events from ordinal from on (0 and 1 both mean all) to w as NDJSON
// Lines. The chain is recomputed from ordinal 1 in any case, so a later start costs the same
// reading. Memory stays flat.
func Export(ctx context.Context, store eventstore.Store, w io.Writer, from uint64) (ExportSummary, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var sum ExportSummary
	var chain Chain
	var compact bytes.Buffer
	for e, err := range prefetchAhead(ctx, verifyPrefetch, verifyAhead, func(ctx context.Context) iter.Seq2[eventstore.Event, error] {
		return readLog(ctx, store)
	}) {
		if err != nil {
			return sum, fmt.Errorf("audit: export: read the log: %w", err)
		}
		ord, h := chain.Add(e)
		if ord < from {
			continue
		}
		l, err := lineOf(ord, e, h, &compact)
		if err != nil {
			return sum, err
		}
		if err := enc.Encode(&l); err != nil {
			return sum, fmt.Errorf("audit: export: write ordinal %d: %w", ord, err)
		}
		if sum.FirstOrdinal == 0 {
			sum.FirstOrdinal = ord
		}
		sum.Events++
		sum.LastOrdinal, sum.Head = ord, h
	}
	if err := bw.Flush(); err != nil {
		return sum, fmt.Errorf("audit: export: %w", err)
	}
	return sum, nil
}
