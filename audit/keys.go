package audit

import (
	"fmt"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
)

// The unique keys that package commands claims for users. They are its contract with the event
// store (eventstore.KeyOwners), so they are stable names; the import test proves they agree.
const (
	emailKeyPrefix    = "email:"
	usernameKeyPrefix = "username:"
)

// UserKeys returns an ImportOptions.Keys that rebuilds the users' email and username claims
// from their events, as the commands made them: UserRegistered claims its email and username,
// EmailChanged and UsernameChanged release the old and claim the new; UserDeleted keeps them. reg
// decodes (and upcasts) the events; nil means domain.NewEventRegistry().
func UserKeys(reg *domain.Registry) func(e eventstore.Event) (claim, release []string, err error) {
	if reg == nil {
		reg = domain.NewEventRegistry()
	}
	return func(e eventstore.Event) ([]string, []string, error) {
		switch e.Type {
		case domain.UserRegistered{}.EventType(), domain.EmailChanged{}.EventType(), domain.UsernameChanged{}.EventType():
		default:
			return nil, nil, nil
		}
		d, err := reg.Decode(e.Type, e.SchemaVersion, e.Data)
		if err != nil {
			return nil, nil, fmt.Errorf("audit: decode %s of %s: %w", e.Type, e.StreamID, err)
		}
		switch d := d.(type) {
		case domain.UserRegistered:
			claim := []string{emailKeyPrefix + d.Email}
			if d.Username != "" {
				claim = append(claim, usernameKeyPrefix+d.Username)
			}
			return claim, nil, nil
		case domain.EmailChanged:
			return []string{emailKeyPrefix + d.To}, []string{emailKeyPrefix + d.From}, nil
		case domain.UsernameChanged:
			var release []string
			if d.From != "" {
				release = []string{usernameKeyPrefix + d.From}
			}
			return []string{usernameKeyPrefix + d.To}, release, nil
		}
		return nil, nil, nil
	}
}
