package postgres

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
)

// appendedChannel is the NOTIFY channel of appends, for Options.Replicas.
const appendedChannel = "idlog_appended"

// committed is told of every append through this store once it committed, up to pos: it wakes
// this process's subscribers at once and, with Replicas, the notifier.
func (s *Store) committed(pos uint64) {
	raiseTo(&s.lastAppended, pos)
	s.appended.Notify()
	if s.opts.Replicas {
		raiseTo(&s.toNotify, pos)
		select {
		case s.notify <- struct{}{}:
		default: // already woken: it will send the newest position
		}
	}
}

// notifier tells the other processes on this database of this one's appends, after they
// committed, until the store closes: one notification at a time, of the newest position
// appended, so appends that commit while one is sent share the next. It names this store
// (instance), whose own listener then ignores it: woken again, every subscriber of this process
// would read the log once more for nothing. Its statement commits without waiting for the disk,
// and a failed one is not sent again: a notification lost costs a listener at most one
// watchHead interval, however it was lost.
//
// Sending it inside each append's transaction (pg_notify in the append's statement) cost much
// more: PostgreSQL serializes the commits of notifying transactions on a lock it holds until
// their commit is flushed, so concurrent appends could no longer share a WAL flush. With
// pgbench, eight clients appending: 1,645-1,949 appends/s notifying in the transaction against
// 2,698-3,689 without.
func (s *Store) notifier() {
	const q = `SELECT pg_notify($1, $2), set_config('synchronous_commit', 'off', true)`
	var sent uint64
	for {
		select {
		case <-s.done:
			return
		case <-s.notify:
		}
		pos := s.toNotify.Load()
		if pos <= sent {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if _, err := s.stmts.ExecContext(ctx, nil, q, appendedChannel, strconv.FormatUint(pos, 10)+" "+s.instance); err == nil {
			sent = pos
		}
		cancel()
	}
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
					// "<position> <instance>"; a bare position from an older idlog.
					p, from, _ := strings.Cut(n.Extra, " ")
					if from == s.instance {
						continue // this store's own append: its subscribers were woken at the commit
					}
					if pos, err := strconv.ParseUint(p, 10, 64); err == nil {
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
