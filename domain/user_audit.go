package domain

import (
	"fmt"
	"unicode/utf8"
)

// RequestAudited: the gateway let one of the user's requests through a permission whose action
// is AUDIT (Barong's audit), recorded under the permission's topic. The envelope's metadata holds
// the client's address and browser.
type RequestAudited struct {
	Topic  string `json:"topic"`
	Method string `json:"method"`
	Path   string `json:"path"`
}

// EventType implements Event.
func (RequestAudited) EventType() string { return "RequestAudited" }

// Limits of RequestAudited.
const (
	maxAuditPath   = 1024
	maxAuditMethod = 16
)

// AuditRequest records that a request of the user was let through an AUDIT permission. It works
// in any state: the gateway decided already.
func (u *User) AuditRequest(topic, method, path string) ([]Event, error) {
	switch {
	case len(topic) > maxTopic || !utf8.ValidString(topic):
		return nil, fmt.Errorf("%w: audit topic of %d bytes", ErrInvalidArgument, len(topic))
	case method == "" || len(method) > maxAuditMethod:
		return nil, fmt.Errorf("%w: audit method %q", ErrInvalidArgument, method)
	case len(path) > maxAuditPath || !utf8.ValidString(path):
		return nil, fmt.Errorf("%w: audit path of %d bytes", ErrInvalidArgument, len(path))
	}
	return u.record(RequestAudited{Topic: topic, Method: method, Path: path}), nil
}
