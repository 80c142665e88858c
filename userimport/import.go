// Package userimport brings users from another system into idlog's event log (idlog users
// import): idlog's own NDJSON/CSV layout, Barong's users table and Wekan's users. Password hashes
// are copied as they were made (auth verifies bcrypt, Meteor's bcrypt, argon2, scrypt and PBKDF2)
// and replaced by argon2id at each user's first sign-in.
//
// An import is all or nothing per file: every row is checked (its fields, its hash format, its
// email and username against the file and the store) before anything is written, and one bad row
// refuses the file with the reasons of all. It is idempotent and resumable: event ids derive from
// the file's SHA-256 and the row, so importing the same file again (after a crash half-way, or by
// mistake) writes only what is missing and counts the rest as already imported.
package userimport

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// ErrRefused: the file holds rows that cannot be imported; nothing was written. Report.Refused
// says which and why.
var ErrRefused = errors.New("userimport: file refused")

// Options tune one import. The zero value imports idlog's layout with 8 writers.
type Options struct {
	Format  Format
	Workers int           // concurrent appends; 0 means 8
	Levels  domain.Levels // the ladder labels grant levels by; zero means the default one
	Now     func() time.Time
}

// Report counts what an import did.
type Report struct {
	File            string // hex SHA-256 of the file: the import's identity
	Rows            int
	Imported        int
	AlreadyImported int // written by an earlier import of the same file
	Refused         []RowError
	Elapsed         time.Duration // the whole import
	Checked         time.Duration // of which reading and checking, before the first write
}

// RowError is why one row cannot be imported.
type RowError struct {
	Line   int
	Reason string
}

func (e RowError) String() string { return fmt.Sprintf("line %d: %s", e.Line, e.Reason) }

// Importer writes imported users to an event store. It is safe for concurrent use.
type Importer struct {
	store    eventstore.Store
	keys     eventstore.KeyOwners
	registry *domain.Registry
}

// New returns an importer. A nil dependency is a wiring mistake: it panics.
func New(store eventstore.Store, keys eventstore.KeyOwners, registry *domain.Registry) *Importer {
	if store == nil || keys == nil || registry == nil {
		panic("userimport: New needs a store, its key owners and the event registry")
	}
	return &Importer{store: store, keys: keys, registry: registry}
}

// eventNamespace scopes the ids of imported events.
var eventNamespace = uuid.MustParse("6f1d7a52-3b7e-4a8e-9d0e-2c5b1f0a9e11")

// prepared is a checked row, ready to append.
type prepared struct {
	row     row
	uid     domain.UserID
	derived bool // the uid was derived, not given by the file: a collision draws the next one
	attempt uint32
	new     domain.ImportedUser
	events  []eventstore.NewEvent
	claim   []string
	skip    bool // written by an earlier import of this file
}

// Import reads data in opts.Format and writes its users, or none of them (ErrRefused, with the
// reasons in the report). Other errors are the store's; what was written before one stays, and
// importing the file again resumes.
func (im *Importer) Import(ctx context.Context, data []byte, opts Options) (Report, error) {
	start := time.Now()
	if opts.Format == "" {
		opts.Format = FormatIdlog
	}
	if opts.Workers <= 0 {
		opts.Workers = 8
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	sum := sha256.Sum256(data)
	rep := Report{File: hex.EncodeToString(sum[:])}
	records, err := readRecords(data)
	if err != nil {
		return rep, err
	}
	rep.Rows = len(records)
	now := opts.Now().UTC()
	md := eventstore.Metadata{ActorUID: eventstore.ActorImport, CorrelationID: "import-" + rep.File[:32]}

	// 1. Each row on its own, and against the others.
	users := make([]*prepared, 0, len(records))
	seen := map[string]int{} // unique key or stream -> line
	refuse := func(line int, format string, args ...any) {
		rep.Refused = append(rep.Refused, RowError{Line: line, Reason: fmt.Sprintf(format, args...)})
	}
	for _, rec := range records {
		r := mapRecord(opts.Format, rec)
		if r.err != nil {
			refuse(r.line, "%v", r.err)
			continue
		}
		p, err := im.prepare(r, sum, now, md, opts.Levels)
		if err != nil {
			refuse(r.line, "%v", err)
			continue
		}
		keys := p.claim
		if !p.derived {
			keys = append([]string{p.uid.Stream()}, keys...)
		}
		if k, first := firstSeen(seen, keys); first > 0 {
			refuse(r.line, "%s is also on line %d", k, first)
			continue
		}
		for p.derived && seen[p.uid.Stream()] > 0 { // two derived ids collide in the file
			if err := im.next(p, sum, now, md); err != nil {
				return rep, err
			}
		}
		for _, k := range slices.Concat(keys, []string{p.uid.Stream()}) {
			seen[k] = r.line
		}
		users = append(users, p)
	}

	// 2. Against the store: keys held by users not of this file, given ids taken.
	var owners map[string]string // nil: ask KeyOwner for each key
	if batch, ok := im.keys.(keyOwnersBatch); ok {
		var keys []string
		for _, p := range users {
			keys = append(keys, p.claim...)
		}
		owners = make(map[string]string)
		for part := range slices.Chunk(keys, 5000) {
			got, err := batch.KeyOwners(ctx, part)
			if err != nil {
				return rep, err
			}
			maps.Copy(owners, got)
		}
	}
	var mu sync.Mutex
	err = parallel(ctx, opts.Workers, users, func(ctx context.Context, p *prepared) error {
		reason, err := im.check(ctx, p, owners)
		if reason != "" {
			mu.Lock()
			refuse(p.row.line, "%s", reason)
			mu.Unlock()
		}
		return err
	})
	if err != nil {
		return rep, err
	}
	if len(rep.Refused) > 0 {
		slices.SortFunc(rep.Refused, func(a, b RowError) int { return a.Line - b.Line })
		rep.Elapsed = time.Since(start)
		return rep, fmt.Errorf("%w: %d of %d rows cannot be imported", ErrRefused, len(rep.Refused), rep.Rows)
	}

	// 3. Write.
	rep.Checked = time.Since(start)
	var imported atomic.Int64
	var pending []*prepared
	for _, p := range users {
		if p.skip {
			rep.AlreadyImported++
		} else {
			pending = append(pending, p)
		}
	}
	write := func(ctx context.Context, p *prepared) error {
		if err := im.write(ctx, p, sum, now, md); err != nil {
			return fmt.Errorf("line %d: %w", p.row.line, err)
		}
		imported.Add(1)
		return nil
	}
	if batcher, ok := im.store.(batchAppender); ok {
		var batches [][]*prepared
		for b := range slices.Chunk(pending, batchSize) {
			batches = append(batches, b)
		}
		err = parallel(ctx, opts.Workers, batches, func(ctx context.Context, b []*prepared) error {
			appends := make([]eventstore.Append, len(b))
			for i, p := range b {
				appends[i] = eventstore.Append{Stream: p.uid.Stream(), Expected: eventstore.NoStream, Events: p.events, Claim: p.claim}
			}
			if _, err := batcher.AppendBatch(ctx, appends); err == nil {
				imported.Add(int64(len(b)))
				return nil
			} else if ctx.Err() != nil {
				return err
			}
			// A collision, a retry of a stored user, a key taken meanwhile: one by one, which
			// handles each (the batch wrote nothing).
			for _, p := range b {
				if err := write(ctx, p); err != nil {
					return err
				}
			}
			return nil
		})
	} else {
		err = parallel(ctx, opts.Workers, pending, write)
	}
	rep.Imported = int(imported.Load())
	rep.Elapsed = time.Since(start)
	return rep, err
}

// prepare checks a row by the domain's rules and builds its events.
func (im *Importer) prepare(r row, file [32]byte, now time.Time, md eventstore.Metadata, levels domain.Levels) (*prepared, error) {
	p := &prepared{row: r}
	if r.uid != "" {
		uid, err := domain.ParseUserID(r.uid)
		if err != nil {
			return nil, err
		}
		p.uid = uid
	} else {
		p.derived = true
		p.uid = derivedUID(file, r.line, 0)
	}
	role := domain.RoleMember
	if r.role != "" {
		var err error
		if role, err = domain.ParseRole(r.role); err != nil {
			return nil, err
		}
	}
	var state domain.State
	if r.state != "" {
		var err error
		if state, err = domain.ParseState(r.state); err != nil {
			return nil, err
		}
	}
	created := r.createdAt
	if created.IsZero() {
		created = now
	}
	p.new = domain.ImportedUser{
		NewUser: domain.NewUser{
			ID: p.uid, Email: r.email, Username: r.username, PasswordHash: r.passwordHash, Role: role,
			Data: r.data, Levels: levels,
		},
		CreatedAt: created, State: state, EmailVerified: r.emailVerified, LoginDisabled: r.loginDisabled,
		Labels: r.labels, Profile: r.profile,
	}
	return p, im.build(p, file, now, md)
}

// build makes the row's events (their ids derive from the file and the line, not the uid).
func (im *Importer) build(p *prepared, file [32]byte, now time.Time, md eventstore.Metadata) error {
	p.new.ID = p.uid
	u, events, err := domain.ImportUser(p.new, now)
	if err != nil {
		return err
	}
	p.events = make([]eventstore.NewEvent, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode %s: %w", e.EventType(), err)
		}
		v, err := im.registry.SchemaVersion(e.EventType())
		if err != nil {
			return err
		}
		p.events[i] = eventstore.NewEvent{ID: eventID(file, p.row.line, i), Type: e.EventType(), SchemaVersion: v, Data: data, Metadata: md}
	}
	p.claim = []string{commands.EmailKey(u.Email())}
	if u.Username() != "" {
		p.claim = append(p.claim, commands.UsernameKey(u.Username()))
	}
	return nil
}

// next draws the next derived uid of p, after a collision.
func (im *Importer) next(p *prepared, file [32]byte, now time.Time, md eventstore.Metadata) error {
	p.attempt++
	if p.attempt > 8 {
		return fmt.Errorf("userimport: line %d: no free user id after %d attempts", p.row.line, p.attempt)
	}
	p.uid = derivedUID(file, p.row.line, p.attempt)
	return im.build(p, file, now, md)
}

// check compares p with the store: a key held by another user refuses the row (its reason); a key
// held by the user an earlier import of this file wrote marks it done.
func (im *Importer) check(ctx context.Context, p *prepared, owners map[string]string) (string, error) {
	for _, k := range p.claim {
		stream, err := im.keyOwner(ctx, k, owners)
		if errors.Is(err, eventstore.ErrKeyNotClaimed) {
			continue
		}
		if err != nil {
			return "", err
		}
		first, err := im.firstEvent(ctx, stream)
		if err != nil {
			return "", err
		}
		if first == p.events[0].ID {
			p.skip = true
			if p.derived {
				uid, err := domain.UserIDFromStream(stream)
				if err != nil {
					return "", err
				}
				p.uid = uid
			}
			return "", nil
		}
		return fmt.Sprintf("%s is taken by %s", k, stream), nil
	}
	if !p.derived {
		first, err := im.firstEvent(ctx, p.uid.Stream())
		if err != nil {
			return "", err
		}
		if first != uuid.Nil {
			return fmt.Sprintf("uid %s is taken", p.uid), nil
		}
	}
	return "", nil
}

// keyOwner is KeyOwner, answered from owners when the store gave them for all keys at once.
func (im *Importer) keyOwner(ctx context.Context, key string, owners map[string]string) (string, error) {
	if owners == nil {
		return im.keys.KeyOwner(ctx, key)
	}
	if stream, ok := owners[key]; ok {
		return stream, nil
	}
	return "", eventstore.ErrKeyNotClaimed
}

// keyOwnersBatch answers KeyOwner for many keys in one query (postgres.Store, sqlite.Store).
type keyOwnersBatch interface {
	KeyOwners(ctx context.Context, keys []string) (map[string]string, error)
}

// firstEvent returns the id of a stream's first event, uuid.Nil if it has none.
func (im *Importer) firstEvent(ctx context.Context, stream string) (uuid.UUID, error) {
	for e, err := range im.store.ReadStream(ctx, stream, 0) {
		if err != nil {
			return uuid.Nil, err
		}
		return e.ID, nil
	}
	return uuid.Nil, nil
}

// write appends p's events to a new stream. A derived uid that collides with a user already
// there draws the next one.
func (im *Importer) write(ctx context.Context, p *prepared, file [32]byte, now time.Time, md eventstore.Metadata) error {
	for {
		_, err := im.store.Append(ctx, eventstore.Append{Stream: p.uid.Stream(), Expected: eventstore.NoStream, Events: p.events, Claim: p.claim})
		if p.derived && errors.Is(err, eventstore.ErrConcurrency) {
			if err := im.next(p, file, now, md); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("append %s: %w (someone took a key since the check? import the file again to resume)", p.uid.Stream(), err)
		}
		return nil
	}
}

// derivedUID is the id of the user of a line that names none: the same for the same file, line
// and attempt, so a second import finds the first one's users.
func derivedUID(file [32]byte, line int, attempt uint32) domain.UserID {
	h := sha256.New()
	h.Write([]byte("idlog users import uid\x00"))
	h.Write(file[:])
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], uint64(line))
	binary.BigEndian.PutUint32(b[8:], attempt)
	h.Write(b[:])
	var id [5]byte
	copy(id[:], h.Sum(nil))
	return domain.NewUserID(id)
}

// eventID is the id of the i-th event of a line.
func eventID(file [32]byte, line, i int) uuid.UUID {
	var b [32 + 16]byte
	copy(b[:], file[:])
	binary.BigEndian.PutUint64(b[32:], uint64(line))
	binary.BigEndian.PutUint64(b[40:], uint64(i))
	return uuid.NewSHA1(eventNamespace, b[:])
}

// batchAppender makes many appends in one transaction, all or none (postgres.Store and
// sqlite.Store): committing each append on its own is far slower for 100,000 new streams.
type batchAppender interface {
	AppendBatch(ctx context.Context, batch []eventstore.Append) ([]eventstore.AppendResult, error)
}

// batchSize is how many users one batched transaction writes.
const batchSize = 200

// parallel runs f on every item with n workers; the first error stops the others.
func parallel[T any](ctx context.Context, n int, items []T, f func(context.Context, T) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(n, max(len(items), 1)) {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(items) {
					return
				}
				if err := f(ctx, items[i]); err != nil {
					cancel(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// firstSeen returns the first of keys an earlier line holds, and that line (0 if none).
func firstSeen(seen map[string]int, keys []string) (string, int) {
	for _, k := range keys {
		if line := seen[k]; line > 0 {
			return k, line
		}
	}
	return "", 0
}
