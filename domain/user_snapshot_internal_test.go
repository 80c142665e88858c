package domain

import (
	"reflect"
	"slices"
	"testing"
)

// TestSnapshotCoversEveryField pins the fields of User: a field added, removed or renamed fails
// here until Snapshot and RestoreUser carry it and UserSnapshotSchema is raised, so that snapshots
// of the old shape are discarded and users rebuilt from their events.
func TestSnapshotCoversEveryField(t *testing.T) {
	t.Parallel()
	// Fields that are not state: derived from others, or configuration set on every load.
	notState := []string{"expiries", "sessionLimit", "levels"}
	state := []string{
		"id", "email", "emailVerified", "username", "passwordHash", "role", "state", "loginDisabled", "closed", "erased",
		"refID", "data", "emailToken", "resetToken", "otpSecret", "otpEnabled", "lastOTPStep", "sessions",
		"failedLogins", "lastFailedLogin", "labels", "level", "wallet", "profile", "settings", "apiKeys", "version",
		"phones", "documents", "dataStorage",
	}
	var got []string
	typ := reflect.TypeFor[User]()
	for i := range typ.NumField() {
		got = append(got, typ.Field(i).Name)
	}
	want := slices.Concat(state, notState)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("User's fields are %v, the snapshot knows %v: update Snapshot, RestoreUser, this list, and raise UserSnapshotSchema", got, want)
	}
}
