package authz_test

import (
	"net/netip"
	"testing"

	"github.com/idlog/idlog/authz"
	"github.com/idlog/idlog/authz/geoiptest"
	"github.com/idlog/idlog/domain"
)

func policy(t *testing.T, perms []domain.Permission, restrictions []domain.Restriction) *domain.AccessPolicy {
	t.Helper()
	p := &domain.AccessPolicy{}
	for _, x := range perms {
		if _, err := p.CreatePermission(x); err != nil {
			t.Fatal(err)
		}
	}
	for _, x := range restrictions {
		if _, err := p.CreateRestriction(x); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestPermissions(t *testing.T) {
	t.Parallel()
	r := authz.Compile(policy(t, []domain.Permission{
		{Role: "member", Verb: "GET", Path: "api/v2/trade", Action: "ACCEPT"},
		{Role: "member", Verb: "ALL", Path: "api/v2/trade/orders", Action: "ACCEPT"},
		{Role: "member", Verb: "ALL", Path: "api/v2/trade/withdraw", Action: "DROP"},
		{Role: "member", Verb: "POST", Path: "api/v2/trade/orders", Action: "AUDIT", Topic: "orders"},
		{Role: "member", Verb: "GET", Path: "api/v2/audited-only", Action: "AUDIT", Topic: "x"},
		{Role: "admin", Verb: "ALL", Path: "api", Action: "ACCEPT"},
	}, nil))
	for _, c := range []struct {
		role, method, path string
		want               authz.Verdict
	}{
		{"member", "GET", "/api/v2/trade/markets", authz.Verdict{Allowed: true}},
		{"member", "POST", "api/v2/trade/markets", authz.Verdict{}},
		{"member", "POST", "api/v2/trade/orders", authz.Verdict{Allowed: true, Audit: true, Topic: "orders"}},
		{"member", "delete", "api/v2/trade/orders/1", authz.Verdict{Allowed: true}},
		{"member", "GET", "api/v2/trade/withdraw", authz.Verdict{}},
		{"member", "GET", "api/v2/audited-only", authz.Verdict{Audit: true, Topic: "x"}},
		{"member", "GET", "api/v3", authz.Verdict{}},
		{"admin", "PUT", "api/v2/trade/withdraw", authz.Verdict{Allowed: true}},
		{"support", "GET", "api/v2/trade", authz.Verdict{}},
	} {
		got := r.Permit(c.role, c.method, c.path)
		if !got.InScope {
			t.Errorf("%s %s %s: not InScope without scopes", c.role, c.method, c.path)
		}
		if got.InScope = false; got != c.want {
			t.Errorf("%s %s %s = %+v, want %+v", c.role, c.method, c.path, got, c.want)
		}
	}
	// An API key's scopes: an ACCEPT that matched must have one of them as its topic.
	scoped := authz.Compile(policy(t, []domain.Permission{
		{Role: "member", Verb: "ALL", Path: "api/v2/trade", Action: "ACCEPT", Topic: "trade"},
		{Role: "member", Verb: "GET", Path: "api/v2/trade/markets", Action: "ACCEPT"},
	}, nil))
	for _, c := range []struct {
		method, path string
		scopes       []string
		in           bool
	}{
		{"GET", "api/v2/trade/orders", []string{"trade"}, true},
		{"GET", "api/v2/trade/markets", []string{"read", "trade"}, true},
		{"GET", "api/v2/trade/orders", []string{"read"}, false},
		{"GET", "api/v2/trade/orders", nil, true},
	} {
		if v := scoped.PermitScoped("member", c.method, c.path, c.scopes); !v.Allowed || v.InScope != c.in {
			t.Errorf("%s %s with %v = %+v, want InScope %v", c.method, c.path, c.scopes, v, c.in)
		}
	}
}

func TestRestrictionPrecedence(t *testing.T) {
	t.Parallel()
	geo, err := authz.OpenGeoIP(geoiptest.Write(t,
		geoiptest.Network{CIDR: "81.0.0.0/8", Country: "FR", Continent: "EU"},
		geoiptest.Network{CIDR: "8.0.0.0/8", Country: "US", Continent: "NA"},
		geoiptest.Network{CIDR: "1.0.0.0/8", Country: "JP", Continent: "AS"},
	))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = geo.Close() })
	if l, err := geo.Locate(netip.MustParseAddr("81.1.2.3")); err != nil || l != (authz.Location{Country: "FR", Continent: "EU"}) {
		t.Fatalf("locate = %+v, %v", l, err)
	}
	r := authz.Compile(policy(t, nil, []domain.Restriction{
		{Category: "blacklist", Scope: "country", Value: "US"},
		{Category: "blacklist", Scope: "ip_subnet", Value: "10.0.0.0/8"},
		{Category: "blacklist", Scope: "ip", Value: "2001:db8::1"},
		{Category: "whitelist", Scope: "ip", Value: "8.8.8.8"},
		{Category: "maintenance", Scope: "continent", Value: "AS"},
		{Category: "blocklogin", Scope: "ip", Value: "81.9.9.9"},
		{Category: "blacklist", Scope: "ip", Value: "81.7.7.7", State: "disabled"},
	}))
	loc := func(ip netip.Addr) func() authz.Location {
		return func() authz.Location { l, _ := geo.Locate(ip); return l }
	}
	for _, c := range []struct {
		ip, path string
		code     string
		status   int
	}{
		{"81.1.1.1", "api/v2/x", "", 0},
		{"8.8.4.4", "api/v2/x", "authz.restrict.blacklist", 423},
		{"8.8.8.8", "api/v2/x", "", 0}, // whitelisted before the country's blacklist
		{"10.1.2.3", "api/v2/x", "authz.restrict.blacklist", 403},
		{"2001:db8::1", "api/v2/x", "authz.restrict.blacklist", 401},
		{"::ffff:10.1.2.3", "api/v2/x", "authz.restrict.blacklist", 403},
		{"1.2.3.4", "api/v2/x", "authz.restrict.maintenance", 471},
		{"1.2.3.4", authz.AccessPath, "", 0}, // a whitelink is used whatever the restrictions
		{"81.9.9.9", "api/v2/x", "", 0},
		{"81.9.9.9", authz.LoginPath, "authz.restrict.blocklogin", 401},
		{"81.7.7.7", "api/v2/x", "", 0}, // disabled
	} {
		ip := netip.MustParseAddr(c.ip)
		ref, refused := r.Restrict(ip, c.path, loc(ip))
		if refused != (c.code != "") || ref.Code != c.code || ref.Status != c.status {
			t.Errorf("%s %s = %+v %v, want %q %d", c.ip, c.path, ref, refused, c.code, c.status)
		}
	}
	// Maintenance for all, a whitelisted address still passes.
	r = authz.Compile(policy(t, nil, []domain.Restriction{
		{Category: "maintenance", Scope: "all", Value: "all"},
		{Category: "whitelist", Scope: "ip_subnet", Value: "192.168.0.0/16"},
	}))
	if _, refused := r.Restrict(netip.MustParseAddr("192.168.1.1"), "x", nil); refused {
		t.Error("whitelisted subnet refused under maintenance")
	}
	if ref, refused := r.Restrict(netip.MustParseAddr("81.1.1.1"), "x", nil); !refused || ref.Status != 471 {
		t.Errorf("maintenance = %+v %v", ref, refused)
	}
}
