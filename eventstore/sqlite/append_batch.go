package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/idlog/idlog/eventstore"
)

// AppendBatch makes many appends, to different streams, as one request of the writer: all are
// stored, or none (the first failure is returned, as Append returns it). Each is checked as
// Append checks it, and a retried append is answered with its original result. It saves a round
// through the writer's queue per append for writers of many new streams at once (idlog users
// import).
func (s *Store) AppendBatch(ctx context.Context, batch []eventstore.Append) ([]eventstore.AppendResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	type prepared struct {
		a      eventstore.Append
		rows   []newRow
		claims []string
	}
	all := make([]prepared, len(batch))
	total := 0
	for i, a := range batch {
		if err := a.Validate(); err != nil {
			return nil, err
		}
		events, err := eventstore.WithIDs(a.Events)
		if err != nil {
			return nil, err
		}
		a.Events = events
		rows := make([]newRow, len(events))
		for j, e := range events {
			md, err := json.Marshal(e.Metadata)
			if err != nil {
				return nil, fmt.Errorf("%w: event %d metadata: %v", eventstore.ErrInvalidAppend, j, err)
			}
			rows[j] = newRow{id: e.ID.String(), typ: e.Type, schema: e.SchemaVersion, data: string(e.Data), metadata: string(md)}
		}
		claims := slices.Clone(a.Claim)
		slices.Sort(claims)
		all[i] = prepared{a: a, rows: rows, claims: slices.Compact(claims)}
		total += len(rows)
	}
	if total > eventstore.MaxEventsPerAppend {
		return nil, fmt.Errorf("%w: %d events in one batch, at most %d", eventstore.ErrInvalidAppend, total, eventstore.MaxEventsPerAppend)
	}
	results := make([]eventstore.AppendResult, len(batch))
	r := &writeRequest{
		ctx:    ctx,
		events: total,
		done:   make(chan error, 1),
		apply: func(w *writer) error {
			for i, p := range all {
				res, err := w.append(p.a, p.rows, p.claims)
				if err != nil {
					return err
				}
				results[i] = res
			}
			return nil
		},
	}
	if err := s.submit(r, "append"); err != nil {
		return nil, err
	}
	return results, nil
}
