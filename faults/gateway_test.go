//go:build faults

package faults_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/idlog/idlog/apikeys"
	"github.com/idlog/idlog/auth"
	"github.com/idlog/idlog/authz/geoiptest"
)

// The gatekeeper behind a real nginx: auth_request asks idlog's /api/v2/auth/{path} before every
// request to a small upstream, and passes the upstream the token idlog answered with.

// upstream is the service behind the gateway: it records what reaches it.
type upstream struct {
	srv   *httptest.Server
	mu    sync.Mutex
	seen  []string // "METHOD path"
	auths []string // the Authorization header of each
	hits  atomic.Int64
}

func newUpstream(tb testing.TB) *upstream {
	u := &upstream{}
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.hits.Add(1)
		if !strings.HasPrefix(r.URL.Path, "/open/") {
			u.mu.Lock()
			u.seen = append(u.seen, r.Method+" "+r.URL.Path)
			u.auths = append(u.auths, r.Header.Get("Authorization"))
			u.mu.Unlock()
		}
		_, _ = io.WriteString(w, "upstream says hi")
	}))
	tb.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) reached(path string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, s := range u.seen {
		if strings.HasSuffix(s, " "+path) {
			return true
		}
	}
	return false
}

// gatewaySite is deploy/nginx-gateway.conf pointed at the test's idlog, upstream and port, with
// its service at /upstream/, and one more location, /open/, straight to the upstream: the
// benchmark's baseline.
func gatewaySite(tb testing.TB, addr, app, svc string) string {
	tb.Helper()
	site, err := os.ReadFile(filepath.Join("..", "deploy", "nginx-gateway.conf"))
	if err != nil {
		tb.Fatal(err)
	}
	text := string(site)
	for _, r := range [][2]string{
		{"server idlog:8080;", "server " + app + ";"},
		{"server trade:9000;", "server " + svc + ";"},
		{"listen 8080;", "listen " + addr + ";"},
		{"location /api/v2/trade/ {", "location /upstream/ {"},
		{"proxy_pass http://trade;", "proxy_pass http://trade;\n    }\n    location /open/ {\n        proxy_http_version 1.1;\n        proxy_set_header Connection \"\";\n        proxy_pass http://trade;"},
	} {
		if !strings.Contains(text, r[0]) {
			tb.Fatalf("deploy/nginx-gateway.conf has no %q", r[0])
		}
		text = strings.Replace(text, r[0], r[1], 1)
	}
	return text
}

// startGateway runs nginx with gatewaySite in front of idlog at app and the upstream at svc.
func startGateway(tb testing.TB, bin, app, svc string) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := tb.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	main := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    %[3]s
}
`, user, dir, gatewaySite(tb, addr, app, strings.TrimPrefix(svc, "http://")))
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(main), 0o600); err != nil {
		tb.Fatal(err)
	}
	if out, err := exec.Command(bin, "-t", "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log")).CombinedOutput(); err != nil {
		tb.Fatalf("nginx -t: %v\n%s", err, out)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if tb.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			tb.Logf("nginx error log:\n%s", b)
		}
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return addr
			}
		}
	}
	tb.Fatal("nginx did not answer /healthz in 10s")
	return ""
}

// nginxFor finds nginx like nginxBinary, for a benchmark too.
func nginxFor(tb testing.TB) string {
	tb.Helper()
	if want := os.Getenv("IDLOG_TEST_NGINX"); want != "" {
		if _, err := os.Stat(want); err != nil {
			tb.Fatalf("IDLOG_TEST_NGINX=%s: %v", want, err)
		}
		return want
	}
	for _, p := range []string{"/usr/sbin/nginx", "/usr/bin/nginx"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		tb.Fatal("nginx is not installed: .ci/run installs nginx-light and sets IDLOG_TEST_NGINX")
	}
	tb.Skip("nginx is not installed (apt-get install nginx-light); set IDLOG_TEST_NGINX to require it")
	return ""
}

// gateway is idlog, the upstream and nginx in front, with an administrator and a member.
type gateway struct {
	app, addr string
	up        *upstream
	admin     string // access token
}

// startIdlogTB runs `idlog serve` (the binary TestMain built) with the gatekeeper's settings.
func startIdlogTB(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	app := l.Addr().String()
	l.Close()
	env := append(os.Environ(), "IDLOG_HTTP_ADDR="+app, "IDLOG_DATA_DIR="+tb.TempDir(),
		"IDLOG_ARGON2_MEMORY=1024", "IDLOG_ARGON2_ITERATIONS=1", "IDLOG_ARGON2_PARALLELISM=1",
		"IDLOG_LOG_LEVEL=warn", "IDLOG_SHUTDOWN_TIMEOUT=5s", "IDLOG_TRUST_FORWARDED_FOR=true",
		"IDLOG_SIGNIN_ADDRESS_MAX_FAILURES=0",
		// The resource server rs introspects with the secret "rs-secret" (its SHA-256).
		"IDLOG_INTROSPECT_CLIENTS=rs:"+fmt.Sprintf("%x", sha256.Sum256([]byte("rs-secret"))),
		// Clients from 127.0.0.4 are in "ZZ", on the continent "OC".
		"IDLOG_GEOIP_DB="+geoiptest.Write(tb, geoiptest.Network{CIDR: "127.0.0.4/32", Country: "ZZ", Continent: "OC"}))
	create := exec.Command(binary, "users", "create", "--email", "boss@example.com", "--password-stdin", "--role", "admin")
	create.Env, create.Stdin = env, strings.NewReader(password+"\n")
	if out, err := create.CombinedOutput(); err != nil {
		tb.Fatalf("idlog users create: %v\n%s", err, out)
	}
	var logs bytes.Buffer
	cmd := exec.Command(binary, "serve")
	cmd.Env = env
	w := &lockedWriter{w: &logs}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if tb.Failed() {
			tb.Logf("idlog output:\n%s", logs.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get("http://" + app + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return app
			}
		}
	}
	tb.Fatalf("idlog serve did not answer /healthz in 30s:\n%s", logs.String())
	return ""
}

func newGateway(tb testing.TB) *gateway {
	bin := nginxFor(tb)
	g := &gateway{app: startIdlogTB(tb), up: newUpstream(tb)}
	g.addr = startGateway(tb, bin, g.app, g.up.srv.URL)
	g.admin = g.signIn(tb, "boss@example.com")
	return g
}

func (g *gateway) url(path string) string { return "http://" + g.addr + path }

// req calls the gateway from the loopback address from (127.0.0.x), with headers in pairs.
func (g *gateway) req(tb testing.TB, from, method, path, token string, body any, headers ...string) (int, []byte) {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, g.url(path), rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	c := hc
	if from != "" {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
	}
	resp, err := c.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func (g *gateway) must(tb testing.TB, want int, method, path, token string, body, out any) {
	tb.Helper()
	status, b := g.req(tb, "", method, path, token, body)
	if status != want {
		tb.Fatalf("%s %s: %d %s, want %d", method, path, status, b, want)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			tb.Fatal(err)
		}
	}
}

func (g *gateway) signUp(tb testing.TB, email string) (uid, token string) {
	tb.Helper()
	g.must(tb, http.StatusCreated, http.MethodPost, "/api/v2/identity/users", "", map[string]string{"email": email, "password": password}, nil)
	var s struct {
		AccessToken string `json:"access_token"`
		User        struct{ UID string }
	}
	g.must(tb, http.StatusOK, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"login": email, "password": password}, &s)
	return s.User.UID, s.AccessToken
}

func (g *gateway) signIn(tb testing.TB, email string) string {
	tb.Helper()
	var s struct {
		AccessToken string `json:"access_token"`
	}
	g.must(tb, http.StatusOK, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"login": email, "password": password}, &s)
	return s.AccessToken
}

// jwksVerifier verifies upstream tokens with nothing but the public keys of the JWKS, as an
// upstream service does: a signer of a throwaway key that accepts the JWKS keys as previous ones.
func (g *gateway) jwksVerifier(tb testing.TB) *auth.Signer {
	tb.Helper()
	var jwks struct {
		Keys []struct{ Kty, Crv, X string }
	}
	g.must(tb, http.StatusOK, http.MethodGet, "/.well-known/jwks.json", "", nil, &jwks)
	var pubs []ed25519.PublicKey
	for _, k := range jwks.Keys {
		if k.Kty == "OKP" && k.Crv == "Ed25519" {
			b, err := base64.RawURLEncoding.DecodeString(k.X)
			if err != nil {
				tb.Fatal(err)
			}
			pubs = append(pubs, b)
		}
	}
	_, throwaway, _ := ed25519.GenerateKey(rand.Reader)
	v, err := auth.NewSigner(throwaway, auth.SignerConfig{Issuer: "idlog", Audience: "idlog:upstream", PreviousKeys: pubs})
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

func (g *gateway) permit(tb testing.TB, role, verb, path, action string) {
	tb.Helper()
	g.must(tb, http.StatusCreated, http.MethodPost, "/api/v2/admin/permissions", g.admin,
		map[string]string{"role": role, "verb": verb, "path": path, "action": action}, nil)
}

func TestGatekeeperBehindNginx(t *testing.T) {
	g := newGateway(t)
	g.permit(t, "member", "ALL", "upstream/", "ACCEPT")
	g.permit(t, "member", "ALL", "upstream/admin", "DROP")
	g.permit(t, "member", "POST", "upstream/read-only", "DROP")
	alice, aliceTok := g.signUp(t, "alice@example.com")

	// A signed-in user reaches a permitted path; the upstream gets a token the JWKS verifies.
	if status, b := g.req(t, "", http.MethodGet, "/upstream/orders", aliceTok, nil); status != http.StatusOK || string(b) != "upstream says hi" {
		t.Fatalf("permitted path: %d %s", status, b)
	}
	g.up.mu.Lock()
	got := g.up.auths[len(g.up.auths)-1]
	g.up.mu.Unlock()
	claims, err := g.jwksVerifier(t).Verify(strings.TrimPrefix(got, "Bearer "))
	if err != nil || claims.UserID != alice || claims.Role != "member" {
		t.Fatalf("upstream token %q: %+v, %v", got, claims, err)
	}

	refused := func(name, from, method, path, token string, want int, headers ...string) {
		t.Helper()
		before := g.up.hits.Load()
		if status, b := g.req(t, from, method, path, token, nil, headers...); status != want {
			t.Errorf("%s: %d %s, want %d", name, status, b, want)
		}
		if g.up.hits.Load() != before || g.up.reached(path) {
			t.Errorf("%s: the request reached the upstream", name)
		}
	}
	// Token introspection, through nginx: only for the configured resource server.
	intro := func(user, secret string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, g.url("/api/v2/identity/introspect"), strings.NewReader(url.Values{"token": {aliceTok}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if user != "" {
			req.SetBasicAuth(user, secret)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, b := intro("rs", "rs-secret"); status != http.StatusOK || !strings.Contains(b, `"active":true`) {
		t.Errorf("introspection by rs: %d %s", status, b)
	}
	for _, cred := range [][2]string{{"", ""}, {"rs", "guess"}} {
		if status, b := intro(cred[0], cred[1]); status != http.StatusUnauthorized || !strings.Contains(b, "identity.introspect.unauthorized") {
			t.Errorf("introspection with %q: %d %s", cred, status, b)
		}
	}

	// A dropped path.
	refused("dropped path", "", http.MethodGet, "/upstream/admin/users", aliceTok, http.StatusUnauthorized)
	// The original method reaches idlog (auth_request's subrequest is a GET; X-Original-Method
	// carries the client's): a POST where only reading is allowed is refused, a GET passes.
	refused("dropped method", "", http.MethodPost, "/upstream/read-only/x", aliceTok, http.StatusUnauthorized)
	if status, _ := g.req(t, "", http.MethodGet, "/upstream/read-only/y", aliceTok, nil); status != http.StatusOK {
		t.Errorf("GET where reading is allowed: %d", status)
	}
	// No token at all.
	refused("no token", "", http.MethodGet, "/upstream/anonymous", "", http.StatusUnauthorized)

	// A blacklisted address (clients from 127.0.0.2), with a valid session.
	g.must(t, http.StatusCreated, http.MethodPost, "/api/v2/admin/restrictions", g.admin,
		map[string]string{"category": "blacklist", "scope": "ip", "value": "127.0.0.2"}, nil)
	refused("blacklisted address", "127.0.0.2", http.MethodGet, "/upstream/from-blacklisted", aliceTok, http.StatusUnauthorized)
	if status, _ := g.req(t, "127.0.0.3", http.MethodGet, "/upstream/from-elsewhere", aliceTok, nil); status != http.StatusOK {
		t.Errorf("another address: %d", status)
	}

	// A country restriction, through the configured GeoIP database, and maintenance for one
	// address: Barong's 423 and 471 with Barong's body reach the client (auth_request alone
	// would turn them into 500; deploy/nginx-gateway.conf maps them back).
	g.must(t, http.StatusCreated, http.MethodPost, "/api/v2/admin/restrictions", g.admin,
		map[string]any{"category": "blacklist", "scope": "country", "value": "ZZ"}, nil)
	refused("blacklisted country", "127.0.0.4", http.MethodGet, "/upstream/from-zz", aliceTok, 423)
	g.must(t, http.StatusCreated, http.MethodPost, "/api/v2/admin/restrictions", g.admin,
		map[string]any{"category": "maintenance", "scope": "ip", "value": "127.0.0.5"}, nil)
	refused("maintenance", "127.0.0.5", http.MethodGet, "/upstream/in-maintenance", aliceTok, 471)
	for _, c := range []struct {
		from string
		want int
		code string
	}{{"127.0.0.4", 423, "authz.restrict.blacklist"}, {"127.0.0.5", 471, "authz.restrict.maintenance"}} {
		status, b := g.req(t, c.from, http.MethodGet, "/upstream/restricted", aliceTok, nil)
		var body struct{ Errors []string }
		if err := json.Unmarshal(b, &body); err != nil || status != c.want || len(body.Errors) != 1 || body.Errors[0] != c.code {
			t.Errorf("from %s: %d %s, want %d {\"errors\":[%q]}", c.from, status, b, c.want, c.code)
		}
	}

	// A banned user.
	bob, bobTok := g.signUp(t, "bob@example.com")
	if status, _ := g.req(t, "", http.MethodGet, "/upstream/bob-before", bobTok, nil); status != http.StatusOK {
		t.Fatalf("bob before his ban: %d", status)
	}
	g.must(t, http.StatusOK, http.MethodPut, "/api/v2/admin/users", g.admin, map[string]string{"uid": bob, "state": "banned"}, nil)
	refused("banned user", "", http.MethodGet, "/upstream/bob-after", bobTok, http.StatusUnauthorized)

	// A signed-out session.
	_, carolTok := g.signUp(t, "carol@example.com")
	g.must(t, http.StatusNoContent, http.MethodDelete, "/api/v2/identity/sessions", carolTok, nil, nil)
	refused("signed-out session", "", http.MethodGet, "/upstream/carol", carolTok, http.StatusUnauthorized)

	// API keys: one request passes; the same nonce again does not; a disabled key does not.
	var qr struct{ URL string }
	g.must(t, http.StatusCreated, http.MethodPost, "/api/v2/resource/otp/generate_qrcode", aliceTok, nil, &qr)
	u, _ := url.Parse(qr.URL)
	otp := u.Query().Get("secret")
	code := func(ahead int64) string {
		c, err := auth.TOTPCode(otp, auth.TOTPStep(time.Now())+ahead)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	// Three codes of three successive steps, all within the server's one step of drift: start
	// them well inside a step, so that no boundary passes between making a code and its check.
	for time.Now().Unix()%auth.TOTPPeriod >= auth.TOTPPeriod-3 {
		time.Sleep(100 * time.Millisecond)
	}
	g.must(t, http.StatusOK, http.MethodPost, "/api/v2/resource/otp/enable", aliceTok, map[string]string{"code": code(-1)}, nil)
	var key struct{ KID, Secret string }
	g.must(t, http.StatusCreated, http.MethodPost, "/api/v2/resource/api_keys", aliceTok, map[string]string{"algorithm": "HS256", "totp_code": code(0)}, &key)
	signed := func() []string {
		nonce := strconv.FormatInt(time.Now().UnixMilli(), 10)
		sig, _ := apikeys.Signature("HS256", []byte(key.Secret), nonce, key.KID)
		return []string{apikeys.HeaderKID, key.KID, apikeys.HeaderNonce, nonce, apikeys.HeaderSignature, sig}
	}
	h := signed()
	if status, b := g.req(t, "", http.MethodGet, "/upstream/by-key", "", nil, h...); status != http.StatusOK {
		t.Fatalf("api key: %d %s", status, b)
	}
	refused("replayed nonce", "", http.MethodGet, "/upstream/by-key-again", "", http.StatusUnauthorized, h...)
	g.must(t, http.StatusOK, http.MethodPatch, "/api/v2/resource/api_keys/"+key.KID, aliceTok, map[string]string{"state": "disabled", "totp_code": code(1)}, nil)
	refused("disabled api key", "", http.MethodGet, "/upstream/by-disabled-key", "", http.StatusUnauthorized, signed()...)

	// Everything refused above never reached the upstream; what passed did.
	for _, p := range []string{"/upstream/orders", "/upstream/from-elsewhere", "/upstream/bob-before", "/upstream/by-key"} {
		if !g.up.reached(p) {
			t.Errorf("%s did not reach the upstream", p)
		}
	}
}

// BenchmarkGatewayAuthRequest measures requests per second through nginx to the upstream with
// auth_request (a signed-in session, one ACCEPT among 1,000 permissions and 1,000 restrictions)
// and without it, in the same run: the ratio is the cost of the gatekeeper.
func BenchmarkGatewayAuthRequest(b *testing.B) {
	g := newGateway(b)
	for i := range 1000 {
		g.permit(b, "member", "GET", fmt.Sprintf("upstream/other%d", i), "ACCEPT")
		g.must(b, http.StatusCreated, http.MethodPost, "/api/v2/admin/restrictions", g.admin,
			map[string]string{"category": "blacklist", "scope": "ip", "value": fmt.Sprintf("10.%d.%d.1", i/250, i%250)}, nil)
	}
	g.permit(b, "member", "GET", "upstream/", "ACCEPT")
	_, tok := g.signUp(b, "bench@example.com")
	run := func(path, token string) float64 {
		const workers = 8
		n := max(b.N, 200)
		tr := &http.Transport{MaxIdleConnsPerHost: workers}
		c := &http.Client{Transport: tr, Timeout: 20 * time.Second}
		defer tr.CloseIdleConnections()
		var next atomic.Int64
		var failed atomic.Int64
		start := time.Now()
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= int64(n) {
					req, _ := http.NewRequest(http.MethodGet, g.url(path), nil)
					if token != "" {
						req.Header.Set("Authorization", "Bearer "+token)
					}
					resp, err := c.Do(req)
					if err != nil {
						failed.Add(1)
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						failed.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if failed.Load() > 0 {
			b.Fatalf("%s: %d of %d requests failed", path, failed.Load(), n)
		}
		return float64(n) / time.Since(start).Seconds()
	}
	b.ResetTimer()
	open := run("/open/ticker", "")
	gated := run("/upstream/ticker", tok)
	b.StopTimer()
	b.ReportMetric(open, "req/s-direct")
	b.ReportMetric(gated, "req/s-auth_request")
	b.ReportMetric(gated/open, "ratio")
}
