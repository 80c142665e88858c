package postgres

import (
	"context"
	"strconv"
	"time"

	"github.com/lib/pq"
)

// appendedChannel is the NOTIFY channel of appends, for Options.Replicas.
const appendedChannel = "idlog_appended"

// notifyAppended tells the other processes on this database that an append committed at pos.
// It runs after the append's own commit, so a listener that wakes finds the events.
func (s *Store) notifyAppended(pos uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = s.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, appendedChannel, strconv.FormatUint(pos, 10))
}

// Progressed returns a channel closed at the next notification on Options.ProgressChannel, from
// any process (with Options.Replicas). Take it before reading what it guards.
func (s *Store) Progressed() <-chan struct{} { return s.progressed.Changed() }

// listen wakes this store's subscribers on appends of other processes, and Progressed's
// waiters, until the store closes. A lost connection is re-established by pq; until then
// everyone polls as usual.
func (s *Store) listen() error {
	l := pq.NewListener(s.opts.DSN, 100*time.Millisecond, 10*time.Second, nil)
	channels := []string{appendedChannel}
	if s.opts.ProgressChannel != "" {
		channels = append(channels, s.opts.ProgressChannel)
	}
	for _, ch := range channels {
		if err := l.Listen(ch); err != nil {
			_ = l.Close()
			return err
		}
	}
	go func() {
		defer l.Close()
		for {
			select {
			case <-s.done:
				return
			case n := <-l.Notify:
				if n != nil && n.Channel == s.opts.ProgressChannel {
					s.progressed.Notify()
					continue
				}
				if n != nil {
					if pos, err := strconv.ParseUint(n.Extra, 10, 64); err == nil {
						raiseTo(&s.lastAppended, pos)
					}
				}
				// nil after a reconnection: something may have been missed; look now.
				s.appended.Notify()
				s.progressed.Notify()
			}
		}
	}()
	return nil
}

// watchHead is the safety net of Replicas: every PollInterval it reads the end of the log, in one
// statement for all of this store's subscribers, and wakes them if it moved, in case a
// notification was lost. Idle subscribers then cost nothing each.
func (s *Store) watchHead() {
	t := time.NewTicker(s.opts.PollInterval)
	defer t.Stop()
	var seen uint64
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.opts.PollInterval)
		var head int64
		err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(position), 0) FROM events`).Scan(&head)
		cancel()
		if err != nil || uint64(head) <= seen {
			continue
		}
		seen = uint64(head)
		raiseTo(&s.lastAppended, seen)
		s.appended.Notify()
	}
}
