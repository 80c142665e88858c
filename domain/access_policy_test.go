package domain_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/idlog/idlog/domain"
)

func TestAccessPolicyRules(t *testing.T) {
	t.Parallel()
	var p domain.AccessPolicy
	for name, c := range map[string]struct {
		x     domain.Permission
		field string
	}{
		"role":   {domain.Permission{Role: "king", Verb: "GET", Path: "api", Action: "accept"}, "role"},
		"verb":   {domain.Permission{Role: "member", Verb: "FETCH", Path: "api", Action: "accept"}, "verb"},
		"action": {domain.Permission{Role: "member", Verb: "GET", Path: "api", Action: "allow"}, "action"},
		"path":   {domain.Permission{Role: "member", Verb: "GET", Path: "/", Action: "accept"}, "path"},
	} {
		_, err := p.CreatePermission(c.x)
		var fe *domain.PolicyFieldError
		if !errors.Is(err, domain.ErrPermissionInvalid) || !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want invalid %s", name, err, c.field)
		}
	}
	ev, err := p.CreatePermission(domain.Permission{Role: "member", Verb: "get", Path: "/api/v2/trade", Action: "audit", Topic: "trade"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ev[0].(domain.PermissionCreated).Permission; got != (domain.Permission{ID: 1, Role: "member", Verb: "GET", Path: "api/v2/trade", Action: "AUDIT", Topic: "trade"}) {
		t.Errorf("created %+v", got)
	}
	if _, err := p.UpdatePermission(1, domain.PermissionPatch{Action: ptr("drop")}); err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpdatePermission(1, domain.PermissionPatch{Action: ptr("DROP")}); !errors.Is(err, domain.ErrUnchanged) {
		t.Errorf("same again: %v", err)
	}
	if _, err := p.DeletePermission(1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.DeletePermission(1); !errors.Is(err, domain.ErrPermissionNotFound) {
		t.Errorf("deleted twice: %v", err)
	}
	// Ids are never reused.
	ev, _ = p.CreatePermission(domain.Permission{Role: "admin", Verb: "ALL", Path: "api", Action: "ACCEPT"})
	if id := ev[0].(domain.PermissionCreated).ID; id != 2 {
		t.Errorf("next id %d, want 2", id)
	}

	for name, c := range map[string]struct {
		x     domain.Restriction
		field string
	}{
		"category":  {domain.Restriction{Category: "greylist", Scope: "ip", Value: "1.2.3.4"}, "category"},
		"scope":     {domain.Restriction{Category: "blacklist", Scope: "city", Value: "Lyon"}, "scope"},
		"ip":        {domain.Restriction{Category: "blacklist", Scope: "ip", Value: "1.2.3"}, "value"},
		"subnet":    {domain.Restriction{Category: "blacklist", Scope: "ip_subnet", Value: "1.2.3.4/33"}, "value"},
		"country":   {domain.Restriction{Category: "blacklist", Scope: "country", Value: "FRA"}, "value"},
		"continent": {domain.Restriction{Category: "blacklist", Scope: "continent", Value: "XX"}, "value"},
		"state":     {domain.Restriction{Category: "blacklist", Scope: "all", Value: "all", State: "on"}, "state"},
		"code":      {domain.Restriction{Category: "blacklist", Scope: "all", Value: "all", Code: 200}, "code"},
	} {
		_, err := p.CreateRestriction(c.x)
		var fe *domain.PolicyFieldError
		if !errors.Is(err, domain.ErrRestrictionInvalid) || !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("%s: %v, want invalid %s", name, err, c.field)
		}
	}
	ev, err = p.CreateRestriction(domain.Restriction{Category: "Maintenance", Scope: "ip_subnet", Value: "10.1.2.3/8"})
	if err != nil {
		t.Fatal(err)
	}
	if got := ev[0].(domain.RestrictionCreated).Restriction; got != (domain.Restriction{ID: 1, Category: "maintenance", Scope: "ip_subnet", Value: "10.0.0.0/8", Code: 471, State: "enabled"}) {
		t.Errorf("created %+v", got)
	}
	if _, err := p.CreateRestriction(domain.Restriction{Category: "maintenance", Scope: "ip_subnet", Value: "10.9.9.9/8"}); !errors.Is(err, domain.ErrRestrictionExists) {
		t.Errorf("duplicate: %v", err)
	}
	ev, _ = p.CreateRestriction(domain.Restriction{Category: "blacklist", Scope: "country", Value: "fr"})
	if got := ev[0].(domain.RestrictionCreated).Restriction; got.Code != 423 || got.Value != "FR" {
		t.Errorf("country default code %+v", got)
	}
	if _, err := p.UpdateRestriction(2, domain.RestrictionPatch{Scope: ptr("ip"), Value: ptr("::ffff:1.2.3.4")}); err != nil {
		t.Fatal(err)
	}
	if r := p.Restrictions()[1]; r.Value != "1.2.3.4" || r.Code != 401 {
		t.Errorf("after update %+v", r)
	}
}

func TestAccessPolicyRoundTrip(t *testing.T) {
	t.Parallel()
	var live domain.AccessPolicy
	var events []domain.Event
	add := func(ev []domain.Event, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, ev...)
	}
	add(live.CreatePermission(domain.Permission{Role: "member", Verb: "GET", Path: "api/v2", Action: "ACCEPT"}))
	add(live.CreatePermission(domain.Permission{Role: "member", Verb: "POST", Path: "api/v2/x", Action: "AUDIT", Topic: "x"}))
	add(live.UpdatePermission(2, domain.PermissionPatch{Verb: ptr("PUT")}))
	add(live.DeletePermission(1))
	add(live.CreateRestriction(domain.Restriction{Category: "whitelist", Scope: "ip", Value: "127.0.0.1"}))
	add(live.CreateRestriction(domain.Restriction{Category: "blocklogin", Scope: "continent", Value: "EU"}))
	add(live.UpdateRestriction(2, domain.RestrictionPatch{State: ptr("disabled")}))
	add(live.DeleteRestriction(1))

	reg := domain.NewEventRegistry()
	decoded := make([]domain.Event, len(events))
	for i, e := range events {
		data, _ := json.Marshal(e)
		var err error
		if decoded[i], err = reg.Decode(e.EventType(), 1, data); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(decoded, events) {
		t.Fatalf("decoded %#v\nwant %#v", decoded, events)
	}
	rebuilt := domain.RehydrateAccessPolicy(decoded)
	if !reflect.DeepEqual(rebuilt.Permissions(), live.Permissions()) || !reflect.DeepEqual(rebuilt.Restrictions(), live.Restrictions()) ||
		rebuilt.Version() != uint64(len(events)) {
		t.Fatalf("rebuilt %+v %+v, live %+v %+v", rebuilt.Permissions(), rebuilt.Restrictions(), live.Permissions(), live.Restrictions())
	}
	// The next ids continue after the deleted ones.
	ev, _ := rebuilt.CreateRestriction(domain.Restriction{Category: "blacklist", Scope: "all", Value: "all"})
	if ev[0].(domain.RestrictionCreated).ID != 3 {
		t.Errorf("next restriction id %d, want 3", ev[0].(domain.RestrictionCreated).ID)
	}
}
