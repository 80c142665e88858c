package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"iter"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// EventReaders are the roles that may read the event log, users as they were, and the audit:
// GET /api/v2/admin/events, /api/v2/admin/users/{uid}/events, /api/v2/admin/users/{uid}?as_of=
// and /api/v2/admin/audit/{verify,checkpoint,proofs/...}. Every one of these routes only reads. The handlers need the
// bearer middleware and RequireRole(EventReaders...) in front. The roles come from the role table.
var EventReaders = commands.RolesWith(commands.AbilityReadEvents)

// Limits of GET /api/v2/admin/events as JSON pages.
const (
	DefaultEventsLimit = 100
	MaxEventsLimit     = 1000
)

const (
	scopeAdminEvents = "admin.events"
	scopeAdminUser   = "admin.user"
	mediaNDJSON      = "application/x-ndjson"
	// ndjsonFlushEvery: a stream is flushed to the client every so many events, so a reader sees
	// progress and the server holds little.
	ndjsonFlushEvery = 256
)

// redactedFields are top-level fields of event data that the admin routes never show: a
// password hash can be attacked offline, and an encrypted TOTP secret is one key away from
// the secret. The export (idlog events export) keeps them: the chain covers the exact bytes.
var redactedFields = []string{"password_hash", "ciphertext"}

// eventJSON is an event as the admin routes show it: the envelope, data and metadata included.
type eventJSON struct {
	Position      uint64              `json:"position"`
	EventID       string              `json:"event_id"`
	StreamID      string              `json:"stream_id"`
	StreamVersion uint64              `json:"stream_version"`
	Type          string              `json:"type"`
	SchemaVersion int                 `json:"schema_version"`
	Data          json.RawMessage     `json:"data"`
	Metadata      eventstore.Metadata `json:"metadata"`
	RecordedAt    time.Time           `json:"recorded_at"`
}

func eventJSONOf(e eventstore.Event) eventJSON {
	return eventJSON{
		Position: e.GlobalPosition, EventID: e.ID.String(), StreamID: e.StreamID, StreamVersion: e.StreamVersion,
		Type: e.Type, SchemaVersion: e.SchemaVersion, Data: redact(e.Data), Metadata: e.Metadata, RecordedAt: e.RecordedAt,
	}
}

// redact replaces the values of redactedFields in a JSON object with "[redacted]".
func redact(data json.RawMessage) json.RawMessage {
	found := false
	for _, f := range redactedFields {
		if bytes.Contains(data, []byte(`"`+f+`"`)) {
			found = true
			break
		}
	}
	if !found {
		return data
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(data, &m) != nil {
		return data // not an object: nothing of ours to hide
	}
	for _, f := range redactedFields {
		if _, ok := m[f]; ok {
			m[f] = json.RawMessage(`"[redacted]"`)
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return data
	}
	return out
}

// eventsQuery is what GET /api/v2/admin/events asks for.
type eventsQuery struct {
	after  uint64
	limit  int // 0: no limit (NDJSON only)
	filter eventstore.Filter
	stream string // exact stream id, "" for any
}

func readEventsQuery(r *http.Request, stream bool) (eventsQuery, []string) {
	q := r.URL.Query()
	var eq eventsQuery
	var bad []string
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			bad = append(bad, scopeAdminEvents+".invalid_after")
		}
		eq.after = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxEventsLimit {
			bad = append(bad, scopeAdminEvents+".invalid_limit")
		}
		eq.limit = n
	}
	for _, v := range q["type"] {
		for t := range strings.SplitSeq(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				eq.filter.Types = append(eq.filter.Types, t)
			}
		}
	}
	if s := q.Get("stream"); stream && s != "" {
		// "user-*" is a prefix; anything else one stream.
		if p, ok := strings.CutSuffix(s, "*"); ok {
			eq.filter.StreamPrefix = p
		} else {
			eq.stream = s
		}
	}
	return eq, bad
}

// events reads the log the query asks for: the global log, or one stream's events after the
// position (a stream's positions rise with its versions).
func (eq eventsQuery) events(ctx context.Context, store eventstore.Store) iter.Seq2[eventstore.Event, error] {
	if eq.stream == "" {
		return store.ReadAll(ctx, eq.after, eq.filter)
	}
	return func(yield func(eventstore.Event, error) bool) {
		for e, err := range store.ReadStream(ctx, eq.stream, 0) {
			if err == nil && (e.GlobalPosition <= eq.after || !eq.filter.Match(e)) {
				continue
			}
			if !yield(e, err) || err != nil {
				return
			}
		}
	}
}

// wantsNDJSON reports whether the client asks for a stream of JSON lines.
func wantsNDJSON(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		for part := range strings.SplitSeq(v, ",") {
			if mt, _, err := mime.ParseMediaType(strings.TrimSpace(part)); err == nil && mt == mediaNDJSON {
				return true
			}
		}
	}
	return false
}

func logger(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}

// AdminEventsHandler serves GET /api/v2/admin/events: the global log in order, after position
// `after` (default 0), only the types named in `type` (repeated or comma-separated) and the
// stream `stream` ("user-*" for a prefix). As JSON, a page of at most `limit` events (default
// DefaultEventsLimit, at most MaxEventsLimit), with the header X-Next-After to pass as `after`
// when more may follow. With "Accept: application/x-ndjson", every matching event (or `limit`),
// one JSON line each, streamed in constant memory: the whole log if asked. Password hashes and
// encrypted secrets in event data are shown as "[redacted]".
func AdminEventsHandler(store eventstore.Store, log *slog.Logger) http.Handler {
	if store == nil {
		panic("api: AdminEventsHandler needs the event store")
	}
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		eq, bad := readEventsQuery(r, true)
		if len(bad) > 0 {
			WriteError(w, http.StatusUnprocessableEntity, bad...)
			return
		}
		if wantsNDJSON(r) {
			streamNDJSON(w, r, log, eq.events(r.Context(), store), eq.limit)
			return
		}
		if eq.limit == 0 {
			eq.limit = DefaultEventsLimit
		}
		page := make([]eventJSON, 0, min(eq.limit, 64))
		more := false
		for e, err := range eq.events(r.Context(), store) {
			if err != nil {
				storeFailed(w, r, log, scopeAdminEvents, err)
				return
			}
			if len(page) == eq.limit {
				more = true
				break
			}
			page = append(page, eventJSONOf(e))
		}
		h := w.Header()
		h.Set("Per-Page", strconv.Itoa(eq.limit))
		h.Set("Cache-Control", "no-store")
		if more {
			h.Set("X-Next-After", strconv.FormatUint(page[len(page)-1].Position, 10))
		}
		WriteJSON(w, http.StatusOK, page)
	})
}

// AdminUserEventsHandler serves GET /api/v2/admin/users/{uid}/events: the user's whole stream,
// oldest first, as a JSON array or (Accept: application/x-ndjson) JSON lines, streamed in
// constant memory. 404 admin.user.doesnt_exist if the user has no event.
func AdminUserEventsHandler(store eventstore.Store, log *slog.Logger) http.Handler {
	if store == nil {
		panic("api: AdminUserEventsHandler needs the event store")
	}
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		uid, err := domain.ParseUserID(mux.Vars(r)["uid"])
		if err != nil {
			WriteError(w, http.StatusNotFound, scopeAdminUser+".doesnt_exist")
			return
		}
		next, stop := iter.Pull2(store.ReadStream(r.Context(), uid.Stream(), 0))
		defer stop()
		first, err, ok := next()
		switch {
		case ok && err != nil:
			storeFailed(w, r, log, scopeAdminUser, err)
			return
		case !ok:
			WriteError(w, http.StatusNotFound, scopeAdminUser+".doesnt_exist")
			return
		}
		rest := func(yield func(eventstore.Event, error) bool) {
			if !yield(first, nil) {
				return
			}
			for {
				e, err, ok := next()
				if !ok || !yield(e, err) || err != nil {
					return
				}
			}
		}
		if wantsNDJSON(r) {
			streamNDJSON(w, r, log, rest, 0)
			return
		}
		streamJSONArray(w, r, log, rest)
	})
}

// streamNDJSON writes events as JSON lines, at most limit (0: all), flushing as it goes.
func streamNDJSON(w http.ResponseWriter, r *http.Request, log *slog.Logger, events iter.Seq2[eventstore.Event, error], limit int) {
	streamEvents(w, r, log, events, limit, false)
}

// streamJSONArray writes events as one JSON array, element by element.
func streamJSONArray(w http.ResponseWriter, r *http.Request, log *slog.Logger, events iter.Seq2[eventstore.Event, error]) {
	streamEvents(w, r, log, events, 0, true)
}

// streamEvents writes events as they are read, so memory stays flat for any number. Once the
// status is sent a read failure can no longer be answered: the connection is dropped, so the
// client sees a broken response rather than a short one that looks whole.
func streamEvents(w http.ResponseWriter, r *http.Request, log *slog.Logger, events iter.Seq2[eventstore.Event, error], limit int, array bool) {
	h := w.Header()
	h.Set("Content-Type", mediaNDJSON)
	if array {
		h.Set("Content-Type", "application/json; charset=utf-8")
	}
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	rc := http.NewResponseController(w)
	enc := json.NewEncoder(bw) // each value ends with a newline: NDJSON's, or space in an array
	if array {
		bw.WriteByte('[')
	}
	n := 0
	for e, err := range events {
		if err != nil {
			if r.Context().Err() == nil {
				log.LogAttrs(r.Context(), slog.LevelError, "event stream broken off",
					slog.String("request_id", RequestID(r.Context())), slog.Int("events_sent", n), slog.Any("error", err))
			}
			_ = bw.Flush()
			panic(http.ErrAbortHandler)
		}
		if array && n > 0 {
			bw.WriteByte(',')
		}
		if err := enc.Encode(eventJSONOf(e)); err != nil {
			return // the client is gone
		}
		n++
		if limit > 0 && n == limit {
			break
		}
		if n%ndjsonFlushEvery == 0 {
			if bw.Flush() != nil {
				return
			}
			_ = rc.Flush()
		}
	}
	if array {
		bw.WriteString("]\n")
	}
	_ = bw.Flush()
}

// storeFailed answers a failed read of the event store before anything was sent.
func storeFailed(w http.ResponseWriter, r *http.Request, log *slog.Logger, scope string, err error) {
	if r.Context().Err() != nil {
		return // the client left
	}
	log.LogAttrs(r.Context(), slog.LevelError, "event store read failed",
		slog.String("request_id", RequestID(r.Context())), slog.String("scope", scope), slog.Any("error", err))
	status, code := errorStatus(scope, err) // the one error map: 503 when the database is away
	WriteError(w, status, code)
}

// userAsOfJSON is a user as they were at a moment of the past, folded from their events.
type userAsOfJSON struct {
	UID           string          `json:"uid"`
	Email         string          `json:"email"`
	Username      string          `json:"username,omitempty"`
	Role          string          `json:"role"`
	State         string          `json:"state"`
	Level         int             `json:"level"`
	OTP           bool            `json:"otp"`
	EmailVerified bool            `json:"email_verified"`
	ReferralUID   string          `json:"referral_uid,omitempty"`
	Data          json.RawMessage `json:"data,omitempty"`
	Labels        []labelAsOfJSON `json:"labels"`
	Wallet        walletAsOfJSON  `json:"wallet"`
	CreatedAt     time.Time       `json:"created_at"`
	// Version, Position and RecordedAt are those of the last event folded in.
	Version    uint64    `json:"version"`
	Position   uint64    `json:"position"`
	RecordedAt time.Time `json:"recorded_at"`
}

type labelAsOfJSON struct {
	Key         string `json:"key"`
	Value       string `json:"value"`
	Scope       string `json:"scope"`
	Description string `json:"description,omitempty"`
}

type walletAsOfJSON struct {
	Free     int64 `json:"free"`
	Standard int64 `json:"standard"`
}

// asOf is the moment of ?as_of=: a global position (digits), or an RFC 3339 time.
type asOf struct {
	position uint64
	at       time.Time
}

func parseAsOf(s string) (asOf, bool) {
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return asOf{position: n}, true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return asOf{at: t}, err == nil
}

// includes reports whether e happened at or before the moment.
func (a asOf) includes(e eventstore.Event) bool {
	if a.at.IsZero() {
		return e.GlobalPosition <= a.position
	}
	return !e.RecordedAt.After(a.at)
}

// AdminUserAsOfHandler serves GET /api/v2/admin/users/{uid}?as_of=<RFC 3339 time | position>:
// the user as they were then (their events up to that time or global position folded by
// domain.RehydrateUser): labels, otp, role, state, wallet and the rest. 404
// admin.user.doesnt_exist if the user did not exist yet; 422 admin.user.invalid_as_of. Without
// as_of it hands the request to next (the current user from the read model), or answers 404 if
// next is nil. reg decodes and upcasts the events; nil means domain.NewEventRegistry().
func AdminUserAsOfHandler(store eventstore.Store, reg *domain.Registry, log *slog.Logger, next http.Handler) http.Handler {
	if store == nil {
		panic("api: AdminUserAsOfHandler needs the event store")
	}
	if reg == nil {
		reg = domain.NewEventRegistry()
	}
	log = logger(log)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := r.URL.Query().Get("as_of")
		if raw == "" {
			if next == nil {
				WriteError(w, http.StatusNotFound, "route.not_found")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		moment, ok := parseAsOf(raw)
		if !ok {
			WriteError(w, http.StatusUnprocessableEntity, scopeAdminUser+".invalid_as_of")
			return
		}
		uid, err := domain.ParseUserID(mux.Vars(r)["uid"])
		if err != nil {
			WriteError(w, http.StatusNotFound, scopeAdminUser+".doesnt_exist")
			return
		}
		var (
			history     []domain.Event
			first, last eventstore.Event
		)
		for e, err := range store.ReadStream(r.Context(), uid.Stream(), 0) {
			if err != nil {
				storeFailed(w, r, log, scopeAdminUser, err)
				return
			}
			if !moment.includes(e) {
				break
			}
			d, err := reg.Decode(e.Type, e.SchemaVersion, e.Data)
			if errors.Is(err, domain.ErrUnknownEventType) {
				continue // another feature's event: it does not change the user
			}
			if err != nil {
				storeFailed(w, r, log, scopeAdminUser, err)
				return
			}
			if len(history) == 0 {
				first = e
			}
			history = append(history, d)
			last = e
		}
		if len(history) == 0 {
			WriteError(w, http.StatusNotFound, scopeAdminUser+".doesnt_exist")
			return
		}
		u, err := domain.RehydrateUser(history)
		if err != nil {
			storeFailed(w, r, log, scopeAdminUser, err)
			return
		}
		out := userAsOfJSON{
			UID: u.ID().String(), Email: u.Email(), Username: u.Username(), Role: u.Role().String(),
			State: u.State().String(), Level: u.Level(), OTP: u.OTPEnabled(), EmailVerified: u.EmailVerified(),
			ReferralUID: u.RefID().String(), Data: u.Data(), Labels: []labelAsOfJSON{},
			Wallet:    walletAsOfJSON{Free: u.Wallet().Free, Standard: u.Wallet().Standard},
			CreatedAt: first.RecordedAt, Version: last.StreamVersion, Position: last.GlobalPosition, RecordedAt: last.RecordedAt,
		}
		for _, l := range u.Labels() {
			out.Labels = append(out.Labels, labelAsOfJSON{Key: l.Key, Value: l.Value, Scope: l.Scope.String(), Description: l.Description})
		}
		w.Header().Set("Cache-Control", "no-store")
		WriteJSON(w, http.StatusOK, out)
	})
}
