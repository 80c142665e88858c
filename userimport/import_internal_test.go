package userimport

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/idlog/idlog/domain"
	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/eventstore/postgres"
	"github.com/idlog/idlog/eventstore/sqlite"
)

type testStore interface {
	eventstore.Store
	eventstore.KeyOwners
}

// backends runs f on a fresh SQLite store and a fresh PostgreSQL schema.
func backends(t *testing.T, f func(t *testing.T, s testStore)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		s, err := sqlite.Open(t.Context(), sqlite.Options{Path: filepath.Join(t.TempDir(), "idlog.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s, err := postgres.Open(t.Context(), postgres.Options{DSN: eventstoretest.PostgresSchema(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		f(t, s)
	})
}

func testFile(t *testing.T, n int) []byte {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte("a password"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var file []byte
	for i := range n {
		line, _ := json.Marshal(map[string]any{"email": fmt.Sprintf("u%d@example.com", i), "password_hash": string(hash), "created_at": "2020-01-01T00:00:00Z"})
		file = append(append(file, line...), '\n')
	}
	return file
}

func countEvents(t *testing.T, s eventstore.Store) int {
	t.Helper()
	n := 0
	for _, err := range s.ReadAll(t.Context(), 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	return n
}

// An import cut short (here: the first user written, the others not) is resumed by importing the
// same file again; a derived uid that another user holds draws the next one, on the batched path
// too (the batch fails, its users are written one by one).
func TestImportResumesAndAvoidsTakenIDs(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, s testStore) {
		file := testFile(t, 5)
		im := New(s, s, domain.NewEventRegistry())
		now := time.Now().UTC()
		sum := sha256.Sum256(file)
		md := eventstore.Metadata{ActorUID: eventstore.ActorImport}

		// The first line's user, as the interrupted import wrote it.
		recs, err := readRecords(file)
		if err != nil {
			t.Fatal(err)
		}
		p, err := im.prepare(mapRecord(FormatIdlog, recs[0]), sum, now, md, domain.Levels{})
		if err != nil {
			t.Fatal(err)
		}
		if err := im.write(t.Context(), p, sum, now, md); err != nil {
			t.Fatal(err)
		}
		// Someone else holds the id line 3's user would get.
		taken := derivedUID(sum, recs[2].line, 0)
		if _, err := s.Append(t.Context(), eventstore.Append{Stream: taken.Stream(), Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{{Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(`{"uid":"` + string(taken) + `","email":"other@example.com","role":"member","password_hash":"$x"}`)}},
			Claim:  []string{"email:other@example.com"}}); err != nil {
			t.Fatal(err)
		}

		rep, err := im.Import(t.Context(), file, Options{})
		if err != nil || rep.Imported != 4 || rep.AlreadyImported != 1 {
			t.Fatalf("resumed import: %+v, %v; want 4 imported, 1 already", rep, err)
		}
		owner, err := s.KeyOwner(t.Context(), "email:u2@example.com")
		if err != nil || owner != derivedUID(sum, recs[2].line, 1).Stream() {
			t.Errorf("u2 is %s (%v), want the next derived id %s", owner, err, derivedUID(sum, recs[2].line, 1))
		}
		events := countEvents(t, s)
		rep, err = im.Import(t.Context(), file, Options{})
		if err != nil || rep.Imported != 0 || rep.AlreadyImported != 5 || countEvents(t, s) != events {
			t.Errorf("third import: %+v, %v; want nothing imported, 5 already, no new event", rep, err)
		}
	})
}

// Rows that clash with each other or with users already there refuse the file with each reason,
// and nothing is written.
func TestImportRefusesClashes(t *testing.T) {
	t.Parallel()
	backends(t, func(t *testing.T, s testStore) {
		if _, err := s.Append(t.Context(), eventstore.Append{Stream: "user-ID00000000AA", Expected: eventstore.NoStream,
			Events: []eventstore.NewEvent{{Type: "UserRegistered", SchemaVersion: 1, Data: json.RawMessage(`{}`)}},
			Claim:  []string{"email:u1@example.com"}}); err != nil {
			t.Fatal(err)
		}
		file := testFile(t, 3)
		file = append(file, testFile(t, 1)...) // u0 again, on line 4
		file = append(file, []byte(`{"uid":"ID00000000AA","email":"x@example.com","password_hash":"$2a$04$abcdefghijklmnopqrstuuJ1v6hGkJ2eC7nL2k0dWm3oQy1e9fR5y"}`+"\n")...)
		file = append(file, []byte(`{"email":"y@example.com","password_hash":"sha1$abc$def"}`+"\n")...)
		before := countEvents(t, s)
		rep, err := New(s, s, domain.NewEventRegistry()).Import(context.Background(), file, Options{})
		if !errors.Is(err, ErrRefused) || countEvents(t, s) != before {
			t.Fatalf("import: %v, %d events written", err, countEvents(t, s)-before)
		}
		var got []string
		for _, r := range rep.Refused {
			got = append(got, r.String())
		}
		for _, want := range []string{
			"line 2: email:u1@example.com is taken by user-ID00000000AA",
			"line 4: email:u0@example.com is also on line 1",
			"line 5: uid ID00000000AA is taken",
			"line 6: password hash: auth: unsupported password hash: unknown format",
		} {
			if !strings.Contains(strings.Join(got, "\n"), want) {
				t.Errorf("reasons %q lack %q", got, want)
			}
		}
	})
}
