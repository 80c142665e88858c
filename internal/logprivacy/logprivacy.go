// Package logprivacy keeps personal data out of logs. idlog's log messages are constant strings;
// the email address, client address and user agent a line concerns travel in attributes with
// known keys, and WithoutPersonalData drops those attributes when an operator's logs must hold
// none (IDLOG_LOG_PERSONAL_DATA=false).
package logprivacy

import (
	"context"
	"log/slog"
)

// PersonalKeys are the attribute keys whose values are personal data: email addresses (email,
// to, login), client addresses (ip, remote) and user agents. Code that logs personal data uses
// one of them, so that WithoutPersonalData can find it.
var PersonalKeys = []string{"email", "to", "login", "ip", "remote", "user_agent"}

var personal = func() map[string]bool {
	m := make(map[string]bool, len(PersonalKeys))
	for _, k := range PersonalKeys {
		m[k] = true
	}
	return m
}()

// WithoutPersonalData returns a handler that passes records to next without the attributes
// named in PersonalKeys, at any depth of groups, including those added with WithAttrs.
func WithoutPersonalData(next slog.Handler) slog.Handler {
	if next == nil {
		panic("logprivacy: WithoutPersonalData needs a handler")
	}
	return handler{next: next}
}

type handler struct{ next slog.Handler }

func (h handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h handler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		if a, ok := keep(a); ok {
			out.AddAttrs(a)
		}
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return handler{next: h.next.WithAttrs(filter(attrs))}
}

func (h handler) WithGroup(name string) slog.Handler { return handler{next: h.next.WithGroup(name)} }

// keep returns a without personal data, and false if nothing of it is left to log.
func keep(a slog.Attr) (slog.Attr, bool) {
	if personal[a.Key] {
		return slog.Attr{}, false
	}
	a.Value = a.Value.Resolve() // a LogValuer may expand to a group holding personal data
	if a.Value.Kind() != slog.KindGroup {
		return a, true
	}
	attrs := filter(a.Value.Group())
	if len(attrs) == 0 {
		return slog.Attr{}, false
	}
	return slog.Attr{Key: a.Key, Value: slog.GroupValue(attrs...)}, true
}

func filter(attrs []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, 0, len(attrs))
	for _, a := range attrs {
		if a, ok := keep(a); ok {
			out = append(out, a)
		}
	}
	return out
}
