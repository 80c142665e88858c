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

// listen wakes this store's subscribers on appends of other processes, until the store closes.
// A lost connection is re-established by pq; until then subscribers poll as usual.
func (s *Store) listen() error {
	l := pq.NewListener(s.opts.DSN, 100*time.Millisecond, 10*time.Second, nil)
	if err := l.Listen(appendedChannel); err != nil {
		_ = l.Close()
		return err
	}
	go func() {
		defer l.Close()
		for {
			select {
			case <-s.done:
				return
			case n := <-l.Notify:
				if n != nil {
					if pos, err := strconv.ParseUint(n.Extra, 10, 64); err == nil {
						raiseTo(&s.lastAppended, pos)
					}
				}
				// nil after a reconnection: something may have been missed; look now.
				s.appended.Notify()
			}
		}
	}()
	return nil
}
