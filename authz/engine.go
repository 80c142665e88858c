package authz

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/idlog/idlog/domain"
)

// DefaultRefreshInterval is how often an Engine looks for changes of the policy: a change made on
// any replica is applied by every replica within it.
const DefaultRefreshInterval = 250 * time.Millisecond

// PolicySource returns the access policy as its stream stands now; *commands.PolicyStream is one.
// It must read only the events appended since its last answer, so asking often costs one short
// query.
type PolicySource interface {
	Current(ctx context.Context) (*domain.AccessPolicy, error)
}

// Locator finds where an address is; *GeoIP is one.
type Locator interface {
	Locate(ip netip.Addr) (Location, error)
}

// Options configure NewEngine.
type Options struct {
	Source PolicySource
	// Geo locates addresses for country and continent restrictions; nil leaves them unknown
	// (such rules then match nobody).
	Geo Locator
	// RefreshInterval: 0 means DefaultRefreshInterval.
	RefreshInterval time.Duration
	Logger          *slog.Logger
}

// Engine answers with the Rules of the policy's latest version it has read. It is safe for
// concurrent use.
type Engine struct {
	o     Options
	rules atomic.Pointer[Rules]
}

// NewEngine returns an engine with empty rules; Refresh or Run loads the policy. A nil Source
// panics.
func NewEngine(o Options) *Engine {
	if o.Source == nil {
		panic("authz: NewEngine needs a policy source")
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = DefaultRefreshInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	e := &Engine{o: o}
	e.rules.Store(Compile(&domain.AccessPolicy{}))
	return e
}

// Rules are the rules in use.
func (e *Engine) Rules() *Rules { return e.rules.Load() }

// Refresh reads the policy's new events, if any, and compiles them.
func (e *Engine) Refresh(ctx context.Context) error {
	p, err := e.o.Source.Current(ctx)
	if err != nil {
		return fmt.Errorf("authz: refresh: %w", err)
	}
	if cur := e.rules.Load(); cur.Version() != p.Version() {
		e.rules.Store(Compile(p))
	}
	return nil
}

// Run refreshes every RefreshInterval until ctx is done. A failed refresh keeps the rules in
// use and is logged.
func (e *Engine) Run(ctx context.Context) {
	t := time.NewTicker(e.o.RefreshInterval)
	defer t.Stop()
	for {
		if err := e.Refresh(ctx); err != nil && ctx.Err() == nil {
			e.o.Logger.LogAttrs(ctx, slog.LevelError, "access policy refresh failed", slog.Any("error", err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Locate is the engine's locator's answer, empty without one or on failure.
func (e *Engine) Locate(ip netip.Addr) Location {
	if e.o.Geo == nil {
		return Location{}
	}
	l, err := e.o.Geo.Locate(ip)
	if err != nil {
		return Location{}
	}
	return l
}

// Restrict applies the restrictions in use (Rules.Restrict), locating ip only if needed.
func (e *Engine) Restrict(ip netip.Addr, path string) (Refusal, bool) {
	return e.Rules().Restrict(ip, path, func() Location { return e.Locate(ip) })
}
