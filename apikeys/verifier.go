// Package apikeys authenticates requests signed with an API key, Barong's way: the headers
// X-Auth-Apikey (the kid), X-Auth-Nonce (milliseconds since the epoch, within a window of now) and
// X-Auth-Signature (hex of HMAC(secret, nonce + kid), with the key's algorithm). Every signature
// check goes through the attempt limiter; every nonce accepted is kept in the database until it
// leaves the window, so a replay is refused on every replica that shares the database.
package apikeys

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/migrations"
)

// The request headers of a signed request.
const (
	HeaderKID       = "X-Auth-Apikey"
	HeaderNonce     = "X-Auth-Nonce"
	HeaderSignature = "X-Auth-Signature"
)

// DefaultWindow is how far a nonce may be from now, either way.
const DefaultWindow = 5 * time.Second

// DefaultPolicy limits wrong signatures per key and client address: a signature is 256 bits, so
// guessing is hopeless; the limit stops hammering. Counting per address too means that someone
// who knows a kid (it travels in a header) cannot throttle its owner's requests from elsewhere.
var DefaultPolicy = attempts.Policy{Free: 20, Delay: time.Second, MaxDelay: 5 * time.Minute, Forget: time.Hour}

// Errors of Verify. Each is a reason to answer 401, but ErrThrottled (429) and storage failures.
var (
	ErrHeaders     = errors.New("apikeys: missing or malformed api key headers")
	ErrNonceWindow = errors.New("apikeys: nonce outside the accepted window")
	ErrNonceReused = errors.New("apikeys: nonce already used")
	ErrSignature   = errors.New("apikeys: invalid signature or unknown key")
	ErrKeyDisabled = errors.New("apikeys: api key not active")
	ErrOwner       = errors.New("apikeys: owner not active")
	ErrOwnerNo2FA  = errors.New("apikeys: owner turned two-factor authentication off")
)

// KeyFinder finds a key and its owner by kid; commands.APIKeyCheck is one.
type KeyFinder interface {
	Key(ctx context.Context, kid string) (commands.KeyHolder, bool, error)
}

// Limiter is the attempt limiter; *attempts.Limiter is one.
type Limiter interface {
	Try(ctx context.Context, now time.Time, counters ...attempts.Counter) (time.Duration, error)
	Done(ctx context.Context, now time.Time, failed bool, counters ...attempts.Counter) error
}

// Options configure New.
type Options struct {
	Keys    KeyFinder
	Limiter Limiter
	// DB holds api_key_nonces (migration 00150): the event store's database, shared by replicas.
	// On SQLite, a writable pool (see attempts.Options.DB).
	DB      *sqlx.DB
	Dialect migrations.Dialect
	// Window is how far a nonce may be from now; 0 means DefaultWindow.
	Window time.Duration
	// Policy limits wrong signatures per key; the zero Policy means DefaultPolicy.
	Policy attempts.Policy
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier checks signed requests. It is safe for concurrent use.
type Verifier struct {
	o         Options
	lastSweep atomic.Int64
}

// New returns a Verifier. Missing dependencies are wiring mistakes and panic.
func New(o Options) (*Verifier, error) {
	if o.Keys == nil || o.Limiter == nil || o.DB == nil {
		panic("apikeys: New needs Keys, a Limiter and a DB")
	}
	if o.Dialect != migrations.Postgres && o.Dialect != migrations.SQLite {
		return nil, fmt.Errorf("apikeys: dialect %q is not postgres or sqlite", o.Dialect)
	}
	if o.Window < 0 {
		return nil, fmt.Errorf("apikeys: window (%v) cannot be negative", o.Window)
	}
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.Policy == (attempts.Policy{}) {
		o.Policy = DefaultPolicy
	}
	if err := o.Policy.Validate(); err != nil {
		return nil, fmt.Errorf("apikeys: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Verifier{o: o}, nil
}

// ThrottledError: too many wrong signatures for this key; retry after RetryAfter.
type ThrottledError struct{ RetryAfter time.Duration }

func (e *ThrottledError) Error() string {
	return fmt.Sprintf("apikeys: too many wrong signatures; retry after %s", e.RetryAfter.Round(time.Second))
}

// Is makes errors.Is(err, commands.ErrThrottled) hold, so the API maps it as other throttles.
func (e *ThrottledError) Is(target error) bool { return target == commands.ErrThrottled }

// Signature returns hex(HMAC(secret, nonce + kid)) with algorithm (HS256, HS384 or HS512): what a
// client sends in X-Auth-Signature.
func Signature(algorithm string, secret []byte, nonce, kid string) (string, error) {
	h, err := hasher(algorithm)
	if err != nil {
		return "", err
	}
	m := hmac.New(h, secret)
	m.Write([]byte(nonce + kid))
	return hex.EncodeToString(m.Sum(nil)), nil
}

func hasher(algorithm string) (func() hash.Hash, error) {
	switch algorithm {
	case "HS256":
		return sha256.New, nil
	case "HS384":
		return sha512.New384, nil
	case "HS512":
		return sha512.New, nil
	}
	return nil, fmt.Errorf("apikeys: unknown algorithm %q", algorithm)
}

// Verify checks a signed request's headers, sent from client address ip, and returns the key's
// owner. Errors: ErrHeaders,
// ErrNonceWindow, ErrSignature, ErrNonceReused, ErrKeyDisabled, ErrOwner, ErrOwnerNo2FA, a
// *ThrottledError, or a storage failure.
func (v *Verifier) Verify(ctx context.Context, kid, nonce, signature, ip string) (commands.KeyHolder, error) {
	if kid == "" || nonce == "" || signature == "" || len(kid) > 64 || len(signature) > 256 {
		return commands.KeyHolder{}, ErrHeaders
	}
	ms, err := strconv.ParseInt(nonce, 10, 64)
	if err != nil || ms <= 0 {
		return commands.KeyHolder{}, ErrHeaders
	}
	now := v.o.Now()
	at := time.UnixMilli(ms)
	if at.Before(now.Add(-v.o.Window)) || at.After(now.Add(v.o.Window)) {
		return commands.KeyHolder{}, ErrNonceWindow
	}
	counter := attempts.Counter{Kind: "apikey", Key: "apikey:" + kid + "|" + ip, Policy: v.o.Policy}
	wait, err := v.o.Limiter.Try(ctx, now, counter)
	if err != nil {
		return commands.KeyHolder{}, err
	}
	if wait > 0 {
		return commands.KeyHolder{}, &ThrottledError{RetryAfter: wait}
	}
	k, ok, err := v.o.Keys.Key(ctx, kid)
	if err != nil {
		v.done(ctx, false, counter)
		return commands.KeyHolder{}, err
	}
	valid := false
	if ok {
		want, err := Signature(k.Algorithm, k.Secret(), nonce, kid)
		got, herr := hex.DecodeString(signature)
		w, _ := hex.DecodeString(want)
		valid = err == nil && herr == nil && hmac.Equal(got, w)
	}
	v.done(ctx, !valid, counter)
	if !valid {
		return commands.KeyHolder{}, ErrSignature
	}
	if !k.KeyActive {
		return commands.KeyHolder{}, ErrKeyDisabled
	}
	if !k.OwnerActive {
		return commands.KeyHolder{}, ErrOwner
	}
	if !k.OwnerOTP {
		return commands.KeyHolder{}, ErrOwnerNo2FA
	}
	fresh, err := v.spend(ctx, kid, ms, at.Add(v.o.Window), now)
	if err != nil {
		return commands.KeyHolder{}, err
	}
	if !fresh {
		return commands.KeyHolder{}, ErrNonceReused
	}
	return k, nil
}

func (v *Verifier) done(ctx context.Context, failed bool, c attempts.Counter) {
	// Best effort, deadline-free: a failure to record is not the caller's business.
	_ = v.o.Limiter.Done(context.WithoutCancel(ctx), v.o.Now(), failed, c)
}

func (v *Verifier) q(query string) string {
	if v.o.Dialect == migrations.Postgres {
		return sqlx.Rebind(sqlx.DOLLAR, query)
	}
	return query
}

// spend records the nonce; false if it was recorded before.
func (v *Verifier) spend(ctx context.Context, kid string, nonce int64, expires, now time.Time) (bool, error) {
	if last := v.lastSweep.Load(); now.UnixMicro()-last > time.Minute.Microseconds() && v.lastSweep.CompareAndSwap(last, now.UnixMicro()) {
		if _, err := v.o.DB.ExecContext(ctx, v.q(`DELETE FROM api_key_nonces WHERE expires_at < ?`), now.UnixMicro()); err != nil {
			return false, fmt.Errorf("apikeys: sweep nonces: %w", err)
		}
	}
	res, err := v.o.DB.ExecContext(ctx, v.q(`INSERT INTO api_key_nonces (kid, nonce, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (kid, nonce) DO NOTHING`), kid, nonce, expires.UnixMicro())
	if err != nil {
		return false, fmt.Errorf("apikeys: record a nonce: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("apikeys: record a nonce: %w", err)
	}
	return n == 1, nil
}
