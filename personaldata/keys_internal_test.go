package personaldata

import (
	"bytes"
	"crypto/rand"
	"testing"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/migrations"
)

// A new data key is stored as a seed; a key stored wrapped (before seeds) still opens. A seed
// copied to another user, altered, or read with another server secret does not open.
func TestStoredKeyForms(t *testing.T) {
	secret := make([]byte, 32)
	rand.Read(secret)
	keys := func(secret []byte) *Keys {
		k, err := NewKeys(sqlx.NewDb(nil, "postgres"), migrations.Postgres, secret)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	k := keys(secret)
	s, stored, err := k.newKey("ID0000000001")
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 21 || stored[0] != seedForm {
		t.Fatalf("stored form of %d bytes, first %d", len(stored), stored[0])
	}
	sealed := s.Seal([]byte("erin@example.com"), nil)
	key, err := keys(secret).openStored("ID0000000001", stored)
	if err != nil {
		t.Fatal(err)
	}
	if opened := mustOpen(t, key, sealed); !bytes.Equal(opened, []byte("erin@example.com")) {
		t.Fatalf("opened %q", opened)
	}
	if _, err := k.openStored("ID0000000002", stored); err == nil {
		t.Error("a seed copied to another user opened")
	}
	altered := bytes.Clone(stored)
	altered[5] ^= 1
	if _, err := k.openStored("ID0000000001", altered); err == nil {
		t.Error("an altered seed opened")
	}
	other := make([]byte, 32)
	rand.Read(other)
	if _, err := keys(other).openStored("ID0000000001", stored); err == nil {
		t.Error("a seed opened with another server secret")
	}

	old := make([]byte, auth.KeySize)
	rand.Read(old)
	wrapped := k.wrap.Seal(old, []byte("ID0000000003"))
	if got, err := keys(secret).openStored("ID0000000003", wrapped); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("a wrapped key opened as %x, %v", got, err)
	}
}

func mustOpen(t *testing.T, key, sealed []byte) []byte {
	t.Helper()
	s, err := auth.NewSealer(key)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := s.Open(sealed, nil)
	if err != nil {
		t.Fatal(err)
	}
	return plain
}
