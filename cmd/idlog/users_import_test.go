package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/crypto/pbkdf2"
	"golang.org/x/crypto/scrypt"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/eventstoretest"
	"github.com/idlog/idlog/internal/config"
)

// importedUser is a user of a fixture: the login and the password it was hashed from.
type importedUser struct {
	login, password string
	active          bool // false: imported banned, so its sign-in is refused
}

// importFixtures writes one file per format, with hashes made by the real libraries, and returns
// the files (by format) and their users.
func importFixtures(t *testing.T) (map[string]string, []importedUser) {
	t.Helper()
	dir := t.TempDir()
	salt := []byte("fixture-salt-123")
	std := base64.RawStdEncoding.EncodeToString
	ab64 := func(b []byte) string { return strings.ReplaceAll(std(b), "+", ".") }
	bc := func(pw string) string {
		h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		return string(h)
	}
	meteor := func(pw string) string {
		sum := sha256.Sum256([]byte(pw))
		return bc(hex.EncodeToString(sum[:]))
	}
	sc, err := scrypt.Key([]byte("scrypt password"), salt, 1<<10, 8, 1, 32)
	if err != nil {
		t.Fatal(err)
	}
	line := func(v map[string]any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	files := map[string]string{}
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	files["idlog"] = write("users.ndjson",
		line(map[string]any{"email": "bcrypt@example.com", "username": "bcrypter", "password_hash": bc("bcrypt password"),
			"created_at": "2019-05-01T12:00:00Z", "email_verified": true, "role": "admin",
			"labels":  []map[string]string{{"key": "tier", "value": "gold"}},
			"profile": map[string]string{"first_name": "Ada", "last_name": "Lovelace", "country": "GB"}})+
			line(map[string]any{"email": "argon2i@example.com", "password_hash": fmt.Sprintf("$argon2i$v=19$m=64,t=2,p=1$%s$%s",
				std(salt), std(argon2.Key([]byte("argon2i password"), salt, 2, 64, 1, 32))), "created_at": "2020-01-02T03:04:05Z"})+
			line(map[string]any{"email": "scrypt@example.com", "password_hash": fmt.Sprintf("$scrypt$ln=10,r=8,p=1$%s$%s", ab64(salt), ab64(sc))})+
			line(map[string]any{"email": "pbkdf2@example.com", "password_hash": fmt.Sprintf("$pbkdf2-sha256$i=1000$%s$%s",
				std(salt), std(pbkdf2.Key([]byte("pbkdf2 password"), salt, 1000, 32, sha256.New)))})+
			line(map[string]any{"email": "banned@example.com", "password_hash": bc("banned password"), "state": "banned"}))
	files["csv"] = write("users.csv", "email,username,password_hash,created_at,email_verified,city\n"+
		fmt.Sprintf("django@example.com,djangouser,pbkdf2_sha256$1000$%s$%s,2018-01-01 00:00:00,1,Paris\n",
			salt, base64.StdEncoding.EncodeToString(pbkdf2.Key([]byte("django password"), salt, 1000, 32, sha256.New)))+
		fmt.Sprintf("werkzeug@example.com,,pbkdf2:sha256:1000$%s$%s,,0,\n",
			salt, hex.EncodeToString(pbkdf2.Key([]byte("werkzeug password"), salt, 1000, 32, sha256.New))))
	files["barong"] = write("barong_users.csv", "id,uid,email,username,password_digest,role,data,level,otp,state,referral_id,created_at,updated_at\n"+
		fmt.Sprintf("1,IDBA40C0FFEE,barong@example.com,,%s,member,\"{\"\"language\"\":\"\"en\"\"}\",1,0,active,,2019-07-01 10:00:00,2019-07-01 10:00:00\n", bc("barong password"))+
		// Barong's data column may hold a bare JSON value; idlog keeps data as an object, so
		// the import keeps it under "barong_data" rather than refusing the row.
		fmt.Sprintf("2,ID00BA40C0DE,pending@example.com,pendinguser,%s,member,\"\"\"en\"\"\",0,0,pending,,2019-07-02 10:00:00,2019-07-02 10:00:00\n", bc("pending password")))
	wekan := []map[string]any{
		{"_id": "XQMZgynx9M79qTtQc", "createdAt": "2017-09-13T06:45:53.127Z", "username": "john",
			"emails": []map[string]any{{"address": "john@example.com", "verified": false}}, "isAdmin": true, "profile": map[string]any{},
			"services": map[string]any{"password": map[string]any{"bcrypt": meteor("wekan password")}}},
		{"_id": "vy4WYj7k7NBhf3AFc", "createdAt": map[string]any{"$date": "2017-09-16T05:51:30.339Z"}, "username": "jane",
			"emails":   []map[string]any{{"address": "jane@example.com", "verified": true}},
			"services": map[string]any{"password": map[string]any{"bcrypt": meteor("jane's wekan password")}}},
	}
	b, err := json.Marshal(wekan)
	if err != nil {
		t.Fatal(err)
	}
	files["wekan"] = write("wekan_users.json", string(b))
	return files, []importedUser{
		{"bcrypt@example.com", "bcrypt password", true}, {"argon2i@example.com", "argon2i password", true},
		{"scrypt@example.com", "scrypt password", true}, {"pbkdf2@example.com", "pbkdf2 password", true},
		{"banned@example.com", "banned password", false},
		{"djangouser", "django password", true}, {"werkzeug@example.com", "werkzeug password", true},
		{"barong@example.com", "barong password", true}, {"pendinguser", "pending password", true},
		{"john", "wekan password", true}, {"jane@example.com", "jane's wekan password", true},
	}
}

// Users imported from every format sign in through the real router with their original
// passwords, and that first sign-in replaces their hash with argon2id. A file with one bad row
// writes nothing; importing a file twice imports nothing the second time.
func TestUsersImport(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{
				"IDLOG_DATA_DIR": t.TempDir(), "IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1",
				"IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "none", "IDLOG_LOG_FORMAT": "json",
			}
			if backend == "postgres" {
				env["IDLOG_DATABASE_URL"] = eventstoretest.PostgresSchema(t)
			}
			files, users := importFixtures(t)

			// One malformed row (an unsupported hash) among good ones: the whole file is refused.
			bad := filepath.Join(t.TempDir(), "bad.ndjson")
			content, _ := os.ReadFile(files["idlog"])
			content = append(content, []byte(`{"email":"md5@example.com","password_hash":"5f4dcc3b5aa765d61d8327deb882cf99"}`+"\n")...)
			if err := os.WriteFile(bad, content, 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runIdlog(t, env, "users", "import", "--file", bad)
			if code != 1 || !strings.Contains(stderr, "line 6: password hash: auth: unsupported password hash: unknown format") ||
				!strings.Contains(stderr, "nothing was written") || !strings.Contains(stdout, "0 imported") {
				t.Fatalf("import of a file with a bad row = %d\nstdout %s\nstderr %s", code, stdout, stderr)
			}
			if n := len(readLog(t, env)); n != 0 {
				t.Fatalf("the refused file wrote %d events", n)
			}

			want := map[string]int{"idlog": 5, "csv": 2, "barong": 2, "wekan": 2}
			for _, format := range []string{"idlog", "csv", "barong", "wekan"} {
				f := format
				if f == "csv" {
					f = "idlog"
				}
				code, stdout, stderr := runIdlog(t, env, "users", "import", "--format", f, "--file", files[format])
				if code != 0 || !strings.Contains(stdout, fmt.Sprintf("%d imported, 0 already imported", want[format])) {
					t.Fatalf("import %s = %d\nstdout %s\nstderr %s", format, code, stdout, stderr)
				}
				// The same file again: nothing new.
				code, stdout, stderr = runIdlog(t, env, "users", "import", "--format", f, "--file", files[format])
				if code != 0 || !strings.Contains(stdout, fmt.Sprintf("0 imported, %d already imported", want[format])) {
					t.Fatalf("second import %s = %d\nstdout %s\nstderr %s", format, code, stdout, stderr)
				}
			}
			before := readLog(t, env)
			for _, e := range before {
				if e.Metadata.ActorUID != eventstore.ActorImport {
					t.Errorf("%s of %s: actor %q, want import", e.Type, e.StreamID, e.Metadata.ActorUID)
				}
				if e.Type == "UserRegistered" && strings.Contains(string(e.Data), `"bcrypt@example.com"`) &&
					!strings.Contains(string(e.Data), `"created_at":"2019-05-01T12:00:00Z"`) {
					t.Errorf("UserRegistered %s does not carry the original creation time", e.Data)
				}
			}

			base, stop := startServe(t, env)
			for _, u := range users {
				if status := signInStatus(t, base, u.login, u.password+" but wrong"); status != http.StatusUnauthorized {
					t.Errorf("%s with a wrong password: %d, want 401", u.login, status)
				}
				status := signInStatus(t, base, u.login, u.password)
				if u.active && status != http.StatusOK {
					t.Errorf("%s with the imported password: %d, want 200", u.login, status)
				}
				if !u.active && status == http.StatusOK {
					t.Errorf("%s is banned and signed in", u.login)
				}
			}
			// Guesses at an imported hash go through the sign-in limits like any: the sixth
			// wrong password in a row waits (429).
			statuses := []int{}
			for range 6 {
				statuses = append(statuses, signInStatus(t, base, "scrypt@example.com", "a guess"))
			}
			if statuses[4] != http.StatusUnauthorized || statuses[5] != http.StatusTooManyRequests {
				t.Errorf("six wrong passwords of an imported user: %v, want 401 then 429", statuses)
			}

			// The read models show the original creation time, and the labels and profile.
			token := signInToken(t, base, "bcrypt@example.com", "bcrypt password")
			req, _ := http.NewRequest(http.MethodGet, base+"/api/v2/admin/users?email=bcrypt@example.com&extended=true", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || !strings.Contains(string(body), `"created_at":"2019-05-01T12:00:00Z"`) || !strings.Contains(string(body), `"tier"`) {
				t.Errorf("GET /api/v2/admin/users as the imported admin = %d %s, want created_at 2019-05-01T12:00:00Z and the tier label", res.StatusCode, body)
			}
			stop()

			rehashed := 0
			for _, e := range readLog(t, env) {
				if e.Type != "PasswordRehashed" {
					continue
				}
				rehashed++
				if !strings.Contains(string(e.Data), `"password_hash":"$argon2id$`) {
					t.Errorf("%s rehashed to %s, want argon2id", e.StreamID, e.Data)
				}
			}
			if rehashed != len(users)-1 {
				t.Errorf("%d PasswordRehashed events, want one per user who signed in (%d)", rehashed, len(users)-1)
			}
		})
	}
}

// readLog returns the whole event log of env's store.
func readLog(t *testing.T, env map[string]string) []eventstore.Event {
	t.Helper()
	cfg, err := config.Bind(flag.NewFlagSet("test", flag.ContinueOnError)).Load(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	store, err := openStore(t.Context(), cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var out []eventstore.Event
	for e, err := range store.ReadAll(t.Context(), 0, eventstore.Filter{}) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

// signInStatus signs in through POST /api/v2/identity/sessions and returns the status.
func signInStatus(t *testing.T, base, login, password string) int {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"login": login, "password": password})
	res, err := http.Post(base+"/api/v2/identity/sessions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// signInToken signs in and returns the access token.
func signInToken(t *testing.T, base, login, password string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"login": login, "password": password})
	res, err := http.Post(base+"/api/v2/identity/sessions", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || out.AccessToken == "" {
		t.Fatalf("sign-in of %s: %d, %v", login, res.StatusCode, err)
	}
	return out.AccessToken
}
