package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/attempts"
	"github.com/idlog/idlog/commands"
)

// Who may introspect (RFC 7662 §2.1 and §4: the endpoint authorizes its caller, so that nobody
// can probe tokens): a resource server with HTTP Basic credentials from IDLOG_INTROSPECT_CLIENTS
// (config.Gatekeeper.IntrospectClientMap),
// or a request signed with an API key whose owner's role may read users (commands.AbilityReadUsers:
// the answer shows a user's email and role). Anyone else gets 401
// identity.introspect.unauthorized. Basic credentials go through the attempt limiter, per client
// address; a right secret proved from an address skips it there for a minute (see passed).

// IntrospectionClients are the resource servers that may introspect with HTTP Basic.
type IntrospectionClients struct {
	// Clients maps a client's name to the SHA-256 of its secret. Secrets are random (at least
	// 32 bytes, say `openssl rand -hex 32`), so a fast hash is as good as a slow one and keeps
	// every introspection cheap.
	Clients map[string][sha256.Size]byte
	// Limiter counts wrong credentials per client address; *attempts.Limiter is one. Required
	// when Clients is not empty.
	Limiter apikeys.Limiter
	// Policy limits wrong credentials; the zero Policy means IntrospectionPolicy.
	Policy attempts.Policy
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	// passed remembers, for a minute, the credentials and address of a check the limiter let
	// through and that proved right: the same right secret from the same address is not checked
	// against the limiter again (its transaction was most of an introspection's time). Wrong
	// secrets always are.
	mu     sync.Mutex
	passed map[[sha256.Size]byte]time.Time
}

// passedFor is how long a right secret from an address skips the limiter.
const passedFor = time.Minute

// maxPassed bounds the remembered checks; a full map starts again empty.
const maxPassed = 10000

func passedKey(name, secret, ip string) [sha256.Size]byte {
	return sha256.Sum256([]byte(name + "\x00" + secret + "\x00" + ip))
}

func (ic *IntrospectionClients) passedRecently(k [sha256.Size]byte, now time.Time) bool {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	until, ok := ic.passed[k]
	return ok && now.Before(until)
}

func (ic *IntrospectionClients) remember(k [sha256.Size]byte, now time.Time) {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	if ic.passed == nil || len(ic.passed) >= maxPassed {
		ic.passed = map[[sha256.Size]byte]time.Time{}
	}
	ic.passed[k] = now.Add(passedFor)
}

// IntrospectionPolicy: 20 wrong secrets per address free, then a growing delay.
var IntrospectionPolicy = attempts.Policy{Free: 20, Delay: time.Second, MaxDelay: 5 * time.Minute, Forget: time.Hour}

// introspectionAllowed says whether r's caller may introspect; if not, it has answered.
func (a *accountRoutes) introspectionAllowed(w http.ResponseWriter, r *http.Request) bool {
	if a.authn.apiKeys != nil && r.Header.Get(apikeys.HeaderKID) != "" {
		c, status, code, err := a.authn.authenticate(r)
		if status != 0 {
			a.authn.refuse(w, r, status, code, err)
			return false
		}
		if !commands.Permits(c.Role, commands.AbilityReadUsers) {
			WriteError(w, http.StatusForbidden, "admin.ability.not_permitted")
			return false
		}
		return a.authn.inScope(w, r, c)
	}
	name, secret, ok := r.BasicAuth()
	ic := a.Introspection
	if !ok || ic == nil || len(ic.Clients) == 0 {
		introspectionUnauthorized(w)
		return false
	}
	now := time.Now
	if ic.Now != nil {
		now = ic.Now
	}
	policy := ic.Policy
	if policy == (attempts.Policy{}) {
		policy = IntrospectionPolicy
	}
	ip := a.clientIP(r)
	sum := sha256.Sum256([]byte(secret))
	want, known := ic.Clients[name]
	good := subtle.ConstantTimeCompare(sum[:], want[:]) == 1 && known
	seen := passedKey(name, secret, ip)
	if good && ic.passedRecently(seen, now()) {
		return true
	}
	counter := attempts.Counter{Kind: "introspect", Key: "introspect:" + ip, Policy: policy}
	wait, err := ic.Limiter.Try(r.Context(), now(), counter)
	if err != nil {
		a.log.LogAttrs(r.Context(), slog.LevelError, "attempt limiter failed",
			slog.String("request_id", RequestID(r.Context())), slog.Any("error", err))
		WriteError(w, http.StatusServiceUnavailable, "server.unavailable")
		return false
	}
	if wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		WriteError(w, http.StatusTooManyRequests, "identity.introspect.too_many_attempts")
		return false
	}
	_ = ic.Limiter.Done(context.WithoutCancel(r.Context()), now(), !good, counter)
	if !good {
		a.log.LogAttrs(r.Context(), slog.LevelInfo, "introspection client refused", slog.String("request_id", RequestID(r.Context())))
		introspectionUnauthorized(w)
		return false
	}
	ic.remember(seen, now())
	return true
}

func introspectionUnauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Basic realm="idlog introspection"`)
	WriteError(w, http.StatusUnauthorized, "identity.introspect.unauthorized")
}
