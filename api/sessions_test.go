package api_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/idlog/idlog/api"
	"github.com/idlog/idlog/commands"
	"github.com/idlog/idlog/domain"
)

// tokens are what a bearer sign-in or refresh answers.
type tokens struct {
	AccessToken      string    `json:"access_token"`
	RefreshToken     string    `json:"refresh_token"`
	SessionExpiresAt time.Time `json:"session_expires_at"`
}

func (s *server) signInTokens(t testing.TB, login, agent string) tokens {
	t.Helper()
	var out tokens
	s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions", body: obj{"login": login, "password": password},
		header: http.Header{"User-Agent": {agent}}}).want(t, http.StatusOK).json(t, &out)
	if out.AccessToken == "" || out.RefreshToken == "" {
		t.Fatalf("sign-in answered %+v", out)
	}
	return out
}

func (s *server) refresh(refreshToken string) response {
	return s.post("/api/v2/identity/sessions/refresh", obj{"refresh_token": refreshToken}, "")
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// eventsOf returns the stored events of one type, decoded into T.
func eventsOf[T any](t *testing.T, s *server, typ string) []T {
	t.Helper()
	var out []T
	for _, e := range s.events(t) {
		if e.Type == typ {
			var v T
			if err := json.Unmarshal(e.Data, &v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
	}
	return out
}

// A refresh token gives a new access token and a new refresh token; each is used up by its use,
// and the log holds their hashes only.
func TestRefreshRotatesTheToken(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "ann@example.com", "")
		first := s.signInTokens(t, "ann@example.com", "phone")
		if !first.SessionExpiresAt.After(s.clock.Now().Add(24 * time.Hour)) {
			t.Fatalf("session expires at %s: it should outlive its access token by far", first.SessionExpiresAt)
		}
		// The access token expires; the refresh token renews the session without the password.
		s.clock.Advance(20 * time.Minute)
		s.get("/api/v2/resource/users/me", first.AccessToken).want(t, http.StatusUnauthorized, "jwt.decode_and_verify")
		var second tokens
		s.refresh(first.RefreshToken).want(t, http.StatusOK).json(t, &second)
		if second.AccessToken == "" || second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Fatalf("refresh answered %+v", second)
		}
		s.get("/api/v2/resource/users/me", second.AccessToken).want(t, http.StatusOK)
		var third tokens
		s.refresh(second.RefreshToken).want(t, http.StatusOK).json(t, &third)
		s.get("/api/v2/resource/users/me", third.AccessToken).want(t, http.StatusOK)

		refreshed := eventsOf[domain.SessionRefreshed](t, s, "SessionRefreshed")
		if len(refreshed) != 2 || refreshed[0].RefreshHash != sha256Hex(second.RefreshToken) || refreshed[1].RefreshHash != sha256Hex(third.RefreshToken) {
			t.Fatalf("SessionRefreshed events %+v", refreshed)
		}
		started := eventsOf[domain.SessionStarted](t, s, "SessionStarted")
		if len(started) != 1 || started[0].RefreshHash != sha256Hex(first.RefreshToken) || !started[0].EndsAt.After(started[0].ExpiresAt) {
			t.Fatalf("SessionStarted events %+v", started)
		}
		for _, e := range s.events(t) {
			for _, tok := range []string{first.RefreshToken, second.RefreshToken, third.RefreshToken} {
				secret := strings.Split(tok, ".")[1]
				if strings.Contains(string(e.Data), secret) || strings.Contains(string(e.Metadata.IdempotencyKey), secret) {
					t.Fatalf("a refresh token is in the log in plain: %s %s", e.Type, e.Data)
				}
			}
		}
		// Malformed and unknown tokens are refused alike, and append nothing.
		before := len(s.events(t))
		s.refresh("nonsense").want(t, http.StatusUnauthorized, "identity.session.invalid_refresh_token")
		forged := strings.Split(third.RefreshToken, ".")
		forged[1] = strings.Repeat("A", 43)
		s.refresh(strings.Join(forged, ".")).want(t, http.StatusUnauthorized, "identity.session.invalid_refresh_token")
		s.post("/api/v2/identity/sessions/refresh", obj{}, "").want(t, http.StatusUnprocessableEntity, "identity.session.missing_refresh_token")
		if n := len(s.events(t)); n != before {
			t.Fatalf("refused refreshes appended %d events", n-before)
		}
		// The activity log shows the refreshes.
		var activity []struct{ Action string }
		s.get("/api/v2/resource/users/activity/session", third.AccessToken).want(t, http.StatusOK).json(t, &activity)
		if n := countAction(activity, "refresh"); n != 2 {
			t.Fatalf("activity shows %d refreshes, want 2: %+v", n, activity)
		}
	})
}

func countAction(rows []struct{ Action string }, action string) int {
	n := 0
	for _, r := range rows {
		if r.Action == action {
			n++
		}
	}
	return n
}

// A refresh token used a second time means two parties hold the session: the session ends for
// both, and the log says why.
func TestRefreshTokenReuseEndsTheSessionFamily(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "bea@example.com", "")
		owner := s.signInTokens(t, "bea@example.com", "laptop")
		other := s.signInTokens(t, "bea@example.com", "phone") // another session: not of the family
		// A thief uses the stolen refresh token first.
		var thief tokens
		s.refresh(owner.RefreshToken).want(t, http.StatusOK).json(t, &thief)
		s.get("/api/v2/resource/users/me", thief.AccessToken).want(t, http.StatusOK)
		// The owner's client refreshes with the same token: reuse.
		s.refresh(owner.RefreshToken).want(t, http.StatusUnauthorized, "identity.session.refresh_token_reused")
		s.caughtUp(t)
		// Both holders are signed out at once: access tokens and refresh tokens.
		s.get("/api/v2/resource/users/me", thief.AccessToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.get("/api/v2/resource/users/me", owner.AccessToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.refresh(thief.RefreshToken).want(t, http.StatusUnauthorized, "identity.session.invalid_refresh_token")
		// The other session lives on.
		s.get("/api/v2/resource/users/me", other.AccessToken).want(t, http.StatusOK)
		ended := eventsOf[domain.SessionEnded](t, s, "SessionEnded")
		if len(ended) != 1 || ended[0].Reason != domain.SessionEndRefreshReuse {
			t.Fatalf("SessionEnded events %+v, want one of reason %s", ended, domain.SessionEndRefreshReuse)
		}
		var activity []struct {
			Action string
			Data   struct{ Reason string }
		}
		s.get("/api/v2/resource/users/activity/session", other.AccessToken).want(t, http.StatusOK).json(t, &activity)
		found := false
		for _, a := range activity {
			found = found || a.Action == "end_session" && a.Data.Reason == string(domain.SessionEndRefreshReuse)
		}
		if !found {
			t.Fatalf("the activity log does not show the reuse: %+v", activity)
		}
	})
}

// A session not renewed within the idle timeout ends; nor does renewing take it past its lifetime.
func TestRefreshStopsAtTheLifetimes(t *testing.T) {
	t.Parallel()
	for _, b := range backends(t) {
		t.Run(b, func(t *testing.T) {
			t.Parallel()
			s := newServer(t, b, serverOptions{sessions: commands.SessionsConfig{IdleTimeout: time.Hour, MaxLifetime: 3 * time.Hour}})
			s.signUp(t, "cat@example.com", "")
			started := s.clock.Now()
			idle := s.signInTokens(t, "cat@example.com", "a")
			long := s.signInTokens(t, "cat@example.com", "b")
			// Renewed every 50 minutes: at 50, 100 and 150 minutes; the last renewal ends at the
			// lifetime (3 hours), so at 200 minutes the session is over.
			for i := 1; i <= 4; i++ {
				s.clock.Advance(50 * time.Minute)
				r := s.refresh(long.RefreshToken)
				if i == 4 {
					r.want(t, http.StatusUnauthorized, "identity.session.invalid_refresh_token")
					break
				}
				r.want(t, http.StatusOK).json(t, &long)
				if i == 3 && !long.SessionExpiresAt.Equal(started.Add(3*time.Hour)) {
					t.Fatalf("last renewal expires at %s, want the lifetime's end %s", long.SessionExpiresAt, started.Add(3*time.Hour))
				}
			}
			// Not renewed for over an hour: over.
			s.refresh(idle.RefreshToken).want(t, http.StatusUnauthorized, "identity.session.invalid_refresh_token")
		})
	}
}

// cookieOf returns the cookie a response sets.
func cookieOf(t *testing.T, r response, name string) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no %s cookie in %v", name, r.header["Set-Cookie"])
	return nil
}

// A browser app signs in for a cookie session: HttpOnly cookies and a CSRF token. Unsafe requests
// authenticated by the cookie need the token; bearer requests do not.
func TestCookieSessionNeedsItsCSRFToken(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "dan@example.com", "")
		r := s.post("/api/v2/identity/sessions", obj{"login": "dan@example.com", "password": password, "cookie": true}, "").want(t, http.StatusOK)
		var body struct {
			CSRFToken   string `json:"csrf_token"`
			AccessToken string `json:"access_token"`
			User        struct{ Email string }
		}
		r.json(t, &body)
		if body.CSRFToken == "" || body.AccessToken != "" || body.User.Email != "dan@example.com" || strings.Contains(r.body, "refresh_token") {
			t.Fatalf("cookie sign-in answered %s", r.body)
		}
		access, refresh := cookieOf(t, r, api.AccessCookie), cookieOf(t, r, api.RefreshCookie)
		if !access.HttpOnly || access.SameSite != http.SameSiteLaxMode || access.Path != "/" || access.Secure {
			t.Fatalf("access cookie %+v", access)
		}
		if !refresh.HttpOnly || refresh.SameSite != http.SameSiteStrictMode || refresh.Path != "/api/v2/identity/sessions" {
			t.Fatalf("refresh cookie %+v", refresh)
		}
		withCookie := func(method, path string, body any, csrf string) response {
			h := http.Header{"Cookie": {access.Name + "=" + access.Value}}
			if csrf != "" {
				h.Set(api.CSRFHeader, csrf)
			}
			return s.do(request{method: method, path: path, body: body, header: h})
		}
		// Reading needs no CSRF token.
		withCookie(http.MethodGet, "/api/v2/resource/users/me", nil, "").want(t, http.StatusOK)
		// Changing does: without it, or with a wrong one, 403 and nothing appended.
		before := len(s.events(t))
		withCookie(http.MethodPut, "/api/v2/resource/users/me", obj{"data": `{"a":1}`}, "").want(t, http.StatusForbidden, "authz.invalid_csrf_token")
		withCookie(http.MethodPut, "/api/v2/resource/users/me", obj{"data": `{"a":1}`}, "wrong").want(t, http.StatusForbidden, "authz.invalid_csrf_token")
		if n := len(s.events(t)); n != before {
			t.Fatalf("refused requests appended %d events", n-before)
		}
		withCookie(http.MethodPut, "/api/v2/resource/users/me", obj{"data": `{"a":1}`}, body.CSRFToken).want(t, http.StatusOK)
		// Bearer requests are unaffected.
		bearer := s.signIn(t, "dan@example.com", "")
		s.send(http.MethodPut, "/api/v2/resource/users/me", obj{"data": `{"a":2}`}, bearer).want(t, http.StatusOK)
		// A bearer session's access token sent as a cookie has no CSRF token to match.
		s.do(request{method: http.MethodPut, path: "/api/v2/resource/users/me", body: obj{"data": `{"a":3}`},
			header: http.Header{"Cookie": {api.AccessCookie + "=" + bearer}, api.CSRFHeader: {body.CSRFToken}}}).
			want(t, http.StatusForbidden, "authz.invalid_csrf_token")

		// The refresh cookie renews the session: new cookies, a new CSRF token, the old one refused.
		s.clock.Advance(time.Minute)
		rr := s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions/refresh",
			header: http.Header{"Cookie": {refresh.Name + "=" + refresh.Value}}}).want(t, http.StatusOK)
		var renewed struct {
			CSRFToken string `json:"csrf_token"`
		}
		rr.json(t, &renewed)
		if renewed.CSRFToken == "" || renewed.CSRFToken == body.CSRFToken || strings.Contains(rr.body, "access_token") {
			t.Fatalf("cookie refresh answered %s", rr.body)
		}
		access2 := cookieOf(t, rr, api.AccessCookie)
		if cookieOf(t, rr, api.RefreshCookie).Value == refresh.Value {
			t.Fatal("the refresh cookie was not rotated")
		}
		access = access2
		withCookie(http.MethodPut, "/api/v2/resource/users/me", obj{"data": `{"a":4}`}, body.CSRFToken).want(t, http.StatusForbidden, "authz.invalid_csrf_token")
		withCookie(http.MethodPut, "/api/v2/resource/users/me", obj{"data": `{"a":4}`}, renewed.CSRFToken).want(t, http.StatusOK)
		// A cookie refresh from a foreign page is refused.
		s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions/refresh",
			header: http.Header{"Cookie": {refresh.Name + "=" + refresh.Value}, "Origin": {"https://evil.example"}}}).
			want(t, http.StatusForbidden, "authz.invalid_origin")
		// Sign-out with the cookie (and its CSRF token) clears the cookies.
		out := withCookie(http.MethodDelete, "/api/v2/identity/sessions", nil, renewed.CSRFToken).want(t, http.StatusNoContent)
		if c := cookieOf(t, out, api.AccessCookie); c.MaxAge >= 0 {
			t.Fatalf("sign-out left the cookie %+v", c)
		}
		withCookie(http.MethodGet, "/api/v2/resource/users/me", nil, "").want(t, http.StatusUnauthorized, "authz.invalid_session")
	})
}

// Over TLS, the session cookies are Secure.
func TestCookiesAreSecureOverTLS(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{})
	s.signUp(t, "eve@example.com", "")
	req := httptest.NewRequest(http.MethodPost, "https://id.example.com/api/v2/identity/sessions",
		strings.NewReader(`{"login":"eve@example.com","password":"`+password+`","cookie":"true"}`))
	req.Header.Set("Content-Type", "application/json")
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, req)
	r := response{status: rec.Code, header: rec.Header(), body: rec.Body.String()}
	r.want(t, http.StatusOK)
	for _, name := range []string{api.AccessCookie, api.RefreshCookie} {
		if c := cookieOf(t, r, name); !c.Secure {
			t.Errorf("%s is not Secure over TLS", name)
		}
	}
}

// Browser apps on listed origins get their preflights answered and credentials allowed; other
// origins get no CORS header at all.
func TestCORSPreflight(t *testing.T) {
	t.Parallel()
	s := newServer(t, "sqlite", serverOptions{cors: []string{"https://app.example.com"}})
	preflight := func(origin string) response {
		return s.do(request{method: http.MethodOptions, path: "/api/v2/resource/users/me", header: http.Header{
			"Origin": {origin}, "Access-Control-Request-Method": {"PUT"},
			"Access-Control-Request-Headers": {"content-type,x-csrf-token"},
		}})
	}
	ok := preflight("https://app.example.com")
	if ok.status != http.StatusNoContent {
		t.Fatalf("allowed preflight: %d %s", ok.status, ok.body)
	}
	h := ok.header
	if h.Get("Access-Control-Allow-Origin") != "https://app.example.com" || h.Get("Access-Control-Allow-Credentials") != "true" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "PUT") ||
		!strings.Contains(strings.ToLower(h.Get("Access-Control-Allow-Headers")), "x-csrf-token") {
		t.Fatalf("allowed preflight headers %v", h)
	}
	refused := preflight("https://evil.example")
	for k := range refused.header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("refused origin got %s: %v", k, refused.header)
		}
	}
	// Actual requests: the allowed origin is echoed with credentials, never "*"; others get nothing.
	got := s.do(request{method: http.MethodGet, path: "/api/v2/identity/ping", header: http.Header{"Origin": {"https://app.example.com"}}}).want(t, http.StatusOK)
	if got.header.Get("Access-Control-Allow-Origin") != "https://app.example.com" || got.header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Fatalf("allowed request headers %v", got.header)
	}
	got = s.do(request{method: http.MethodGet, path: "/api/v2/identity/ping", header: http.Header{"Origin": {"https://evil.example"}}}).want(t, http.StatusOK)
	for k := range got.header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Fatalf("refused origin got %s: %v", k, got.header)
		}
	}
	// Without an allowlist, no origin is allowed.
	none := newServer(t, "sqlite", serverOptions{})
	r := none.do(request{method: http.MethodGet, path: "/api/v2/identity/ping", header: http.Header{"Origin": {"https://app.example.com"}}})
	if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
		t.Fatalf("no allowlist, yet Access-Control-Allow-Origin %q", v)
	}
}

type sessionOut struct {
	ID        string    `json:"id"`
	UserAgent string    `json:"user_agent"`
	UserIP    string    `json:"user_ip"`
	Current   bool      `json:"current"`
	StartedAt time.Time `json:"started_at"`
	LastSeen  time.Time `json:"last_seen_at"`
}

// A user sees their sessions (device, address, times, which is theirs) and ends another one.
func TestSessionsListAndEnd(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "fay@example.com", "")
		laptop := s.signInTokens(t, "fay@example.com", "Firefox on a laptop")
		phone := s.signInTokens(t, "fay@example.com", "Safari on a phone")
		s.clock.Advance(10 * time.Minute)
		var renewed tokens
		s.do(request{method: http.MethodPost, path: "/api/v2/identity/sessions/refresh", body: obj{"refresh_token": phone.RefreshToken},
			header: http.Header{"User-Agent": {"Safari on a phone, updated"}}, remote: "198.51.100.7:5000"}).want(t, http.StatusOK).json(t, &renewed)
		var list []sessionOut
		s.get("/api/v2/resource/sessions", laptop.AccessToken).want(t, http.StatusOK).json(t, &list)
		if len(list) != 2 {
			t.Fatalf("sessions %+v", list)
		}
		// The most recently used first: the phone, renewed from another address and browser.
		if list[0].UserAgent != "Safari on a phone, updated" || list[0].UserIP != "198.51.100.7" || list[0].Current ||
			!list[0].LastSeen.After(list[0].StartedAt) {
			t.Fatalf("phone session %+v", list[0])
		}
		if list[1].UserAgent != "Firefox on a laptop" || !list[1].Current {
			t.Fatalf("laptop session %+v", list[1])
		}
		// The laptop ends the phone's session: its tokens stop working at once.
		s.send(http.MethodDelete, "/api/v2/resource/sessions/"+list[0].ID, nil, laptop.AccessToken).want(t, http.StatusNoContent)
		s.get("/api/v2/resource/users/me", renewed.AccessToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.refresh(renewed.RefreshToken).want(t, http.StatusUnauthorized, "identity.session.invalid_refresh_token")
		s.get("/api/v2/resource/sessions", laptop.AccessToken).want(t, http.StatusOK).json(t, &list)
		if len(list) != 1 || !list[0].Current {
			t.Fatalf("sessions after the end %+v", list)
		}
		s.send(http.MethodDelete, "/api/v2/resource/sessions/nope", nil, laptop.AccessToken).want(t, http.StatusNotFound, "resource.session.not_found")
		ended := eventsOf[domain.SessionEnded](t, s, "SessionEnded")
		if len(ended) != 1 || ended[0].Reason != domain.SessionEndRevoked {
			t.Fatalf("SessionEnded events %+v", ended)
		}
		// Someone else's session is not found either.
		s.signUp(t, "gus@example.com", "")
		gus := s.signInTokens(t, "gus@example.com", "x")
		s.send(http.MethodDelete, "/api/v2/resource/sessions/"+list[0].ID, nil, gus.AccessToken).want(t, http.StatusNotFound, "resource.session.not_found")
		s.get("/api/v2/resource/users/me", laptop.AccessToken).want(t, http.StatusOK)
	})
}

// An administrator sees a user's sessions and ends one, or all.
func TestAdminEndsSessions(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		_, admin := s.staff(t, "root", domain.RoleAdmin)
		uid := s.signUp(t, "hal@example.com", "")
		a := s.signInTokens(t, "hal@example.com", "a")
		b := s.signInTokens(t, "hal@example.com", "b")
		c := s.signInTokens(t, "hal@example.com", "c")
		var view struct{ Sessions []sessionOut }
		s.get("/api/v2/admin/users/"+uid, admin).want(t, http.StatusOK).json(t, &view)
		if len(view.Sessions) != 3 {
			t.Fatalf("admin view sessions %+v", view.Sessions)
		}
		var aID string
		for _, x := range view.Sessions {
			if x.UserAgent == "a" {
				aID = x.ID
			}
		}
		s.send(http.MethodDelete, "/api/v2/admin/users/"+uid+"/sessions/"+aID, nil, admin).want(t, http.StatusNoContent)
		s.get("/api/v2/resource/users/me", a.AccessToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		s.get("/api/v2/resource/users/me", b.AccessToken).want(t, http.StatusOK)
		s.send(http.MethodDelete, "/api/v2/admin/users/"+uid+"/sessions/"+aID, nil, admin).want(t, http.StatusNotFound, "admin.session.not_found")
		// All of them.
		s.send(http.MethodDelete, "/api/v2/admin/users/"+uid+"/sessions", nil, admin).want(t, http.StatusNoContent)
		for _, tok := range []tokens{b, c} {
			s.get("/api/v2/resource/users/me", tok.AccessToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
			s.refresh(tok.RefreshToken).want(t, http.StatusUnauthorized, "identity.session.invalid_refresh_token")
		}
		s.get("/api/v2/admin/users/"+uid, admin).want(t, http.StatusOK).json(t, &view)
		if len(view.Sessions) != 0 {
			t.Fatalf("sessions left %+v", view.Sessions)
		}
		reasons := map[domain.SessionEnd]int{}
		for _, e := range eventsOf[domain.SessionEnded](t, s, "SessionEnded") {
			reasons[e.Reason]++
		}
		if reasons[domain.SessionEndRevokedByAdmin] != 3 || len(reasons) != 1 {
			t.Fatalf("SessionEnded reasons %v", reasons)
		}
		// The admin's own session is untouched; an unknown user is 404.
		s.send(http.MethodDelete, "/api/v2/admin/users/ID0000000001/sessions", nil, admin).want(t, http.StatusNotFound, "admin.user.doesnt_exist")
	})
}

// One refresh token sent many times at once: exactly one refresh wins, the others see its reuse,
// and the session ends for everyone.
func TestConcurrentRefreshesOfOneTokenEndTheSession(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, s *server) {
		s.signUp(t, "ida@example.com", "")
		first := s.signInTokens(t, "ida@example.com", "x")
		const n = 8
		results := make([]response, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { results[i] = s.refresh(first.RefreshToken) })
		}
		wg.Wait()
		var won []tokens
		reused := 0
		for _, r := range results {
			switch {
			case r.status == http.StatusOK:
				var tok tokens
				r.json(t, &tok)
				won = append(won, tok)
			case r.status == http.StatusUnauthorized && strings.Contains(r.body, "identity.session.refresh_token_reused"):
				reused++
			case r.status == http.StatusUnauthorized && strings.Contains(r.body, "identity.session.invalid_refresh_token"):
			default:
				t.Fatalf("refresh answered %d %s", r.status, r.body)
			}
		}
		if len(won) != 1 || reused == 0 {
			t.Fatalf("%d refreshes won and %d saw the reuse; want 1 and at least 1", len(won), reused)
		}
		s.get("/api/v2/resource/users/me", won[0].AccessToken).want(t, http.StatusUnauthorized, "authz.invalid_session")
		if got := len(eventsOf[domain.SessionRefreshed](t, s, "SessionRefreshed")); got != 1 {
			t.Fatalf("%d SessionRefreshed events, want 1", got)
		}
	})
}
