package projections_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/lease"
	"github.com/idlog/idlog/projections"
)

// syncBuffer is a log sink two runtimes write to at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReplicasShareEachProjectorWithOneOwner runs two replicas' runtimes on one database: each
// projector runs in one of them only, the other stands by and answers read-your-writes from the
// shared checkpoints; when the owner stops, the standby takes over, and nothing fails.
func TestReplicasShareEachProjectorWithOneOwner(t *testing.T) {
	eachBackend(t, func(t *testing.T, b backend) {
		e := b.open(t, envOptions{replicas: true})
		logs := &syncBuffer{}
		replica := func(owner string) (*projections.Runtime, *projections.UsersView) {
			l, err := lease.New(lease.Options{DB: e.db.DB, Dialect: e.dialect, Owner: owner, TTL: 400 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			users, activity := e.views()
			log := slog.New(slog.NewTextHandler(logs, nil)).With("replica", owner)
			return e.runtime(t, projections.Options{Lease: l, Logger: log, SharedProgress: e.sharedProgress()}, users, activity), users
		}
		ra, usersA := replica("a")
		rb, usersB := replica("b")
		start(t, ra)
		start(t, rb)

		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// Each projector has exactly one running owner, named alike by both replicas.
		for {
			sa, err := ra.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			sb, err := rb.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			settled := true
			for i := range sa {
				if sa[i].Running == sb[i].Running || sa[i].Owner == "" || sa[i].Owner != sb[i].Owner {
					settled = false
				}
				if sa[i].State == projections.StateFailing || sb[i].State == projections.StateFailing {
					t.Fatalf("a projector is failing: %+v / %+v", sa[i], sb[i])
				}
			}
			if settled {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("no single owner per projector: %+v / %+v", sa, sb)
			}
			time.Sleep(20 * time.Millisecond)
		}

		// Writes answered by either replica read their own write there.
		uid := newUID()
		waitFor(t, ra, appendTo(t, e.store, uid, userMeta(uid), registered(uid, "replicas@example.com", "")).LastPosition)
		check := func(r *projections.Runtime, users *projections.UsersView, i int) {
			t.Helper()
			name := fmt.Sprintf("name%03d", i)
			res := appendTo(t, e.store, uid, userMeta(uid), domain.UsernameChanged{To: name})
			// Generous: this checks that the wait ends with the write visible, not how fast.
			wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
			defer wcancel()
			if err := r.WaitFor(wctx, res.LastPosition); err != nil {
				t.Fatalf("write %d: %v", i, err)
			}
			if u, err := users.ByUID(ctx, uid); err != nil || u.Username != name {
				t.Fatalf("write %d: read %q, %v; want %q", i, u.Username, err, name)
			}
		}
		for i := range 40 {
			if i%2 == 0 {
				check(ra, usersA, i)
			} else {
				check(rb, usersB, i)
			}
		}

		// a stops (and gives its leases up): b owns every projector and goes on.
		ra.Stop()
		for i := 40; i < 60; i++ {
			check(rb, usersB, i)
		}
		sb, err := rb.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range sb {
			if !s.Running || s.State == projections.StateFailing {
				t.Fatalf("after a stopped, b does not run %s: %+v", s.Name, s)
			}
		}
		if out := logs.String(); strings.Contains(out, "level=ERROR") || strings.Contains(out, "moved the checkpoint") {
			t.Fatalf("errors in the replicas' logs:\n%s", out)
		}
	})
}
