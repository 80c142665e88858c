// Package authz is the gateway's decision engine: Barong's restrictions (who may reach the
// platform, by address, network, country or continent) and permissions (which role may call which
// verb on which path prefix), compiled from the access policy's event stream into Rules that
// answer in memory. An Engine keeps the Rules of the policy's latest version, following its
// stream, so a change made on any replica is applied by every replica within its refresh
// interval.
package authz

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/idlog/idlog/domain"
)

// Location is where an address is, as a GeoIP database says: ISO 3166-1 alpha-2 country and
// continent codes, upper case; empty when unknown.
type Location struct {
	Country, Continent string
}

// Refusal is a restriction's answer: the status and Barong's code, authz.restrict.<category>.
type Refusal struct {
	Category string
	Status   int
	Code     string
	// RuleID is the restriction that matched, for the log.
	RuleID int64
}

// Verdict is the permissions' answer for a role, verb and path.
type Verdict struct {
	// Allowed: some rule accepts and none drops (Barong: at least one ACCEPT, no DROP).
	Allowed bool
	// Audit: an AUDIT rule matched; Topic is its topic.
	Audit bool
	Topic string
	// InScope: the scopes given to PermitScoped are empty, or an ACCEPT rule that matched has
	// one of them as its topic (an API key's scopes).
	InScope bool
}

// Paths the restrictions treat apart, without their leading slash, as Barong does: a whitelink is
// used at AccessPath whatever the restrictions; blocklogin refuses only LoginPath.
const (
	AccessPath = "api/v2/identity/users/access"
	LoginPath  = "api/v2/identity/sessions"
)

type matched struct {
	id     int64
	status int
}

type categoryRules struct {
	all        *matched
	ips        map[netip.Addr]matched
	subnets    []subnetRule
	continents map[string]matched
	countries  map[string]matched
}

type subnetRule struct {
	prefix netip.Prefix
	matched
}

func (c *categoryRules) empty() bool {
	return c.all == nil && len(c.ips) == 0 && len(c.subnets) == 0 && len(c.continents) == 0 && len(c.countries) == 0
}

// match finds the first rule that matches, Barong's order: all, ip, ip_subnet, continent, country.
func (c *categoryRules) match(ip netip.Addr, loc func() Location) (matched, bool) {
	if c.all != nil {
		return *c.all, true
	}
	if m, ok := c.ips[ip]; ok {
		return m, true
	}
	for _, s := range c.subnets {
		if s.prefix.Contains(ip) {
			return s.matched, true
		}
	}
	if len(c.continents) == 0 && len(c.countries) == 0 {
		return matched{}, false
	}
	l := loc()
	if m, ok := c.continents[l.Continent]; ok && l.Continent != "" {
		return m, true
	}
	if m, ok := c.countries[l.Country]; ok && l.Country != "" {
		return m, true
	}
	return matched{}, false
}

type permRule struct {
	verb, path, action, topic string
}

// Rules are a compiled access policy. They are immutable and safe for concurrent use.
type Rules struct {
	policy     *domain.AccessPolicy
	version    uint64
	categories [4]categoryRules // in domain.RestrictionCategories' order
	perms      map[string][]permRule
	needsGeo   bool
}

// Policy is the access policy the rules were compiled from: read it, never call its commands.
func (r *Rules) Policy() *domain.AccessPolicy { return r.policy }

// Version is the policy stream version the rules were compiled from.
func (r *Rules) Version() uint64 { return r.version }

// NeedsLocation reports whether some enabled restriction is by country or continent, so that
// the caller looks addresses up only then.
func (r *Rules) NeedsLocation() bool { return r.needsGeo }

// Compile compiles the enabled restrictions and the permissions of p.
func Compile(p *domain.AccessPolicy) *Rules {
	r := &Rules{policy: p, version: p.Version(), perms: map[string][]permRule{}}
	for _, x := range p.Restrictions() {
		if x.State != domain.RestrictionEnabled {
			continue
		}
		i := indexOf(domain.RestrictionCategories, x.Category)
		if i < 0 {
			continue
		}
		c := &r.categories[i]
		m := matched{id: x.ID, status: x.Code}
		switch x.Scope {
		case domain.ScopeAll:
			if c.all == nil {
				c.all = &m
			}
		case domain.ScopeIP:
			if a, err := netip.ParseAddr(x.Value); err == nil {
				if c.ips == nil {
					c.ips = map[netip.Addr]matched{}
				}
				c.ips[a.Unmap()] = m
			}
		case domain.ScopeIPSubnet:
			if n, err := netip.ParsePrefix(x.Value); err == nil {
				c.subnets = append(c.subnets, subnetRule{prefix: n.Masked(), matched: m})
			}
		case domain.ScopeContinent:
			if c.continents == nil {
				c.continents = map[string]matched{}
			}
			c.continents[x.Value] = m
			r.needsGeo = true
		case domain.ScopeCountry:
			if c.countries == nil {
				c.countries = map[string]matched{}
			}
			c.countries[x.Value] = m
			r.needsGeo = true
		}
	}
	for _, x := range p.Permissions() {
		r.perms[x.Role] = append(r.perms[x.Role], permRule{verb: x.Verb, path: x.Path, action: x.Action, topic: x.Topic})
	}
	return r
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// Restrict applies the restrictions to a request from ip for path (without its leading slash),
// in Barong's order of precedence: a whitelist match lets it through; else a maintenance or
// blacklist match refuses it; else a blocklogin match refuses a sign-in (LoginPath). loc is
// called only when a country or continent rule needs it. ok false: not refused.
func (r *Rules) Restrict(ip netip.Addr, path string, loc func() Location) (Refusal, bool) {
	path = strings.TrimLeft(path, "/")
	if path == AccessPath || strings.HasPrefix(path, AccessPath+"/") {
		return Refusal{}, false
	}
	ip = ip.Unmap()
	var cached *Location
	where := func() Location {
		if cached == nil {
			l := Location{}
			if loc != nil {
				l = loc()
			}
			cached = &l
		}
		return *cached
	}
	for i, category := range domain.RestrictionCategories {
		c := &r.categories[i]
		if c.empty() {
			continue
		}
		m, ok := c.match(ip, where)
		if !ok {
			continue
		}
		switch category {
		case domain.CategoryWhitelist:
			return Refusal{}, false
		case domain.CategoryBlocklogin:
			if path != LoginPath {
				continue
			}
		}
		return Refusal{Category: category, Status: m.status, Code: "authz.restrict." + category, RuleID: m.id}, true
	}
	return Refusal{}, false
}

// Permit applies the permissions of role to a call of method on path (without its leading
// slash): Barong's rule, at least one matching ACCEPT and no matching DROP; no matching rule
// refuses.
func (r *Rules) Permit(role, method, path string) Verdict {
	return r.PermitScoped(role, method, path, nil)
}

// PermitScoped is Permit for a caller limited to scopes (an API key's): InScope tells whether
// an ACCEPT rule that matched has a topic among them.
func (r *Rules) PermitScoped(role, method, path string, scopes []string) Verdict {
	path = strings.TrimLeft(path, "/")
	method = strings.ToUpper(method)
	v := Verdict{InScope: len(scopes) == 0}
	accept, drop := false, false
	for _, p := range r.perms[role] {
		if (p.verb != method && p.verb != domain.VerbAll) || !strings.HasPrefix(path, p.path) {
			continue
		}
		switch p.action {
		case domain.ActionAccept:
			accept = true
			if !v.InScope && p.topic != "" && slices.Contains(scopes, p.topic) {
				v.InScope = true
			}
		case domain.ActionDrop:
			drop = true
		case domain.ActionAudit:
			if !v.Audit {
				v.Audit, v.Topic = true, p.topic
			}
		}
	}
	v.Allowed = accept && !drop
	return v
}
