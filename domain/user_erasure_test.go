package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"

	"github.com/idlog/idlog/domain"
)

func TestEraseClosesOpenAccountAndRoundTrips(t *testing.T) {
	t.Parallel()
	live, events, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", Username: "alice", PasswordHash: hash1,
		Data: json.RawMessage(`{"lang":"fr"}`)})
	if err != nil {
		t.Fatal(err)
	}
	evs, err := signIn("s1", at(0), 0)(live)
	if err != nil {
		t.Fatal(err)
	}
	events = append(events, evs...)
	erased, err := live.Erase(at(1))
	if err != nil {
		t.Fatal(err)
	}
	want := []domain.Event{domain.AccountClosed{Email: "alice@example.com", Username: "alice"},
		domain.SessionEnded{SessionID: "s1", Reason: domain.SessionEndAccountClosed}, domain.UserErased{}}
	if !reflect.DeepEqual(erased, want) {
		t.Fatalf("Erase = %#v, want %#v", erased, want)
	}
	events = append(events, erased...)
	mustBe(t, "erased", live.Erased(), true)
	mustBe(t, "email", live.Email(), domain.Erased)
	mustBe(t, "username", live.Username(), "")
	if live.Data() != nil {
		t.Errorf("data after erasure = %s, want none", live.Data())
	}
	if _, err := live.Erase(at(2)); !errors.Is(err, domain.ErrErased) {
		t.Errorf("erasing twice = %v, want ErrErased", err)
	}
	if _, err := live.ChangeState(domain.StateActive, "", at(3)); !errors.Is(err, domain.ErrAccountClosed) {
		t.Errorf("restoring an erased user = %v, want ErrAccountClosed", err)
	}

	reg := domain.NewEventRegistry()
	decoded := make([]domain.Event, len(events))
	for i, e := range events {
		data, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if decoded[i], err = reg.Decode(e.EventType(), 1, data); err != nil {
			t.Fatalf("decode %s: %v", e.EventType(), err)
		}
	}
	rebuilt, err := domain.RehydrateUser(decoded)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := viewOf(rebuilt), viewOf(live); !reflect.DeepEqual(got, want) {
		t.Fatalf("rehydrated erased user differs:\n got %+v\nwant %+v", got, want)
	}
}

func TestEraseOfClosedAccountRecordsOnlyUserErased(t *testing.T) {
	t.Parallel()
	u, _, err := domain.Register(domain.NewUser{ID: uid, Email: "alice@example.com", PasswordHash: hash1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Close(at(0)); err != nil {
		t.Fatal(err)
	}
	evs, err := u.Erase(at(1))
	if err != nil || !reflect.DeepEqual(evs, []domain.Event{domain.UserErased{}}) {
		t.Fatalf("Erase of a closed account = %#v, %v; want only UserErased", evs, err)
	}
}

func TestPersonalFieldsAreDeclaredByTags(t *testing.T) {
	t.Parallel()
	reg := domain.NewEventRegistry()
	for name, want := range map[string][]string{
		"UserRegistered": {"email", "username", "data"},
		"EmailChanged":   {"from", "to"},
		"ProfileCreated": {"first_name", "last_name", "dob", "address", "postcode", "city", "company", "vat_id", "metadata"},
		"WalletCredited": {"reference"},
		"UserErased":     nil,
	} {
		if got := reg.PersonalFields(name); !slices.Equal(got, want) {
			t.Errorf("PersonalFields(%s) = %v, want %v", name, got, want)
		}
	}
}

type badPersonal struct {
	Age int `json:"age" personal:"true"`
}

func (badPersonal) EventType() string { return "BadPersonal" }

func TestPersonalTagOnUnsealableFieldPanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("registering a personal int field did not panic")
		}
	}()
	domain.NewRegistry().Register(badPersonal{}, 1)
}
