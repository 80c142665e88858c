package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/idlog/idlog/audit"
	"github.com/idlog/idlog/internal/config"
)

// Erasing a user with a rich history (profile, sessions, labels, wallet, free data) keeps the
// audit proofs: verify against the checkpoint taken before passes, and every inclusion proof made
// before checks against the events as exported after. Then nothing of their email, names, address,
// user agent or IP is left in any table of the database, in an export, or in IDLOG_EVENTS.
func TestErasureKeepsProofsAndLeavesNoPersonalData(t *testing.T) {
	t.Parallel()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		db, err := sql.Open("sqlite", sqliteDSN(config.Config{DataDir: dir}.SQLitePath()))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		erasureJourney(t, dir, "", db, `SELECT name FROM sqlite_master WHERE type = 'table'`)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn, db, schema := postgresSchema(t)
		erasureJourney(t, t.TempDir(), dsn, db, `SELECT table_name FROM information_schema.tables WHERE table_schema = '`+schema+`'`)
	})
}

// postgresSchema gives the test a schema of its own in the shared test database: the DSN that
// uses it, and a connection whose queries see it. It fails in CI without a database.
func postgresSchema(t *testing.T) (string, *sql.DB, string) {
	t.Helper()
	base := os.Getenv("IDLOG_TEST_DATABASE_URL")
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("IDLOG_TEST_DATABASE_URL is not set")
		}
		t.Skip("IDLOG_TEST_DATABASE_URL is not set")
	}
	admin, err := sql.Open("postgres", base)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	schema := "idlog_erasure_" + strings.ReplaceAll(uuid.NewString(), "-", "")
	if _, err := admin.ExecContext(t.Context(), "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, err := admin.ExecContext(context.Background(), "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Error(err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	db, err := sql.Open("postgres", u.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return u.String(), db, schema
}

// erasureJourney is TestErasureKeepsProofsAndLeavesNoPersonalData on one database: dsn is
// PostgreSQL's, or empty for SQLite in dir; db reads the same database, tables lists its tables.
func erasureJourney(t *testing.T, dir, dsn string, db *sql.DB, tables string) {
	env := map[string]string{
		"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "0", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1", "IDLOG_DATABASE_URL": dsn,
	}
	const password = "the operator's long passphrase"
	if code, _, stderr := runWithStdin(t, env, password, "users", "create", "--email", "root@example.com", "--password-stdin", "--role", "superadmin"); code != 0 {
		t.Fatalf("users create = %d: %s", code, stderr)
	}
	secrets := []string{"erin.erasable@example.com", "erinshred", "Erinvaldo", "Shreddington", "42 Forgetme Lane", "EraseMeBrowser/1.0", "Shredville", "favourite-colour-mauve", "FR76-ERIN-IBAN-0042"}

	// serve: the history, then stop.
	natsPort := ""
	serve := func() (base string, logs *jsonLogs, stop func()) {
		logs, stderr := newJSONLogs(t)
		ctx, cancel := context.WithCancel(t.Context())
		served := make(chan int, 1)
		go func() {
			served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
		}()
		url := logs.wait(t, "embedded NATS server listening")["url"].(string)
		natsPort = url[strings.LastIndex(url, ":")+1:]
		base = "http://" + logs.wait(t, "listening")["addr"].(string)
		return base, logs, func() {
			cancel()
			go func() {
				for range logs.lines { // drain, so the logger never blocks the stop
				}
			}()
			if code := <-served; code != 0 {
				t.Errorf("serve exited with %d", code)
			}
		}
	}
	adminToken := ""
	call := func(base, method, path, token string, body any) (int, map[string]any) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = strings.NewReader(string(b))
		}
		req, _ := http.NewRequestWithContext(t.Context(), method, base+path, rd)
		req.Header.Set("Content-Type", "application/json")
		// The user's browser; the administrator's is another.
		req.Header.Set("User-Agent", "EraseMeBrowser/1.0")
		if token == adminToken || strings.Contains(fmt.Sprint(body), "root@example.com") {
			req.Header.Set("User-Agent", "AdminConsole/2.0")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	must := func(code, want int, what string, body map[string]any) {
		t.Helper()
		if code != want {
			t.Fatalf("%s = %d %v, want %d", what, code, body, want)
		}
	}

	base, _, stop := serve()
	code, admin := call(base, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"email": "root@example.com", "password": password})
	must(code, http.StatusOK, "admin sign-in", admin)
	adminToken = admin["access_token"].(string)
	code, user := call(base, http.MethodPost, "/api/v2/identity/users", "", map[string]any{"email": "erin.erasable@example.com", "username": "erinshred", "password": password,
		"data": `{"note":"favourite-colour-mauve"}`})
	must(code, http.StatusCreated, "sign-up", user)
	uid := user["uid"].(string)
	code, session := call(base, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"login": "erin.erasable@example.com", "password": password})
	must(code, http.StatusOK, "sign-in", session)
	token := session["access_token"].(string)
	code, body := call(base, http.MethodPost, "/api/v2/resource/profiles", token, map[string]string{"first_name": "Erinvaldo", "last_name": "Shreddington",
		"address": "42 Forgetme Lane", "city": "Shredville", "country": "FR"})
	must(code, http.StatusCreated, "create profile", body)
	code, body = call(base, http.MethodPost, "/api/v2/admin/users/labels", adminToken, map[string]string{"uid": uid, "key": "kyc", "value": "verified", "scope": "private"})
	must(code, http.StatusCreated, "add label", body)
	code, body = call(base, http.MethodPost, "/api/v2/admin/wallets/"+uid+"/credits", adminToken, map[string]any{"balance": "standard", "amount": "500", "reason": "deposit", "reference": "FR76-ERIN-IBAN-0042"})
	if code != http.StatusCreated && code != http.StatusOK {
		t.Fatalf("credit = %d %v", code, body)
	}
	stop()

	// The auditor's take-away before the erasure: a checkpoint, and a proof of every event.
	if code, stdout, stderr := runIdlog(t, env, "audit", "seal"); code != 0 {
		t.Fatalf("seal: %d %s %s", code, stdout, stderr)
	}
	code, note, stderr := runIdlog(t, env, "audit", "checkpoint")
	if code != 0 {
		t.Fatalf("checkpoint: %d %s", code, stderr)
	}
	size := strings.Split(note, "\n")[1]
	var n int
	fmt.Sscan(size, &n)
	away := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(away, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cp := write("checkpoint", note)
	proofs := make([]string, n)
	for i := range n {
		code, proof, stderr := runIdlog(t, env, "audit", "prove", "-ordinal", fmt.Sprint(i+1))
		if code != 0 {
			t.Fatalf("prove %d: %d %s", i+1, code, stderr)
		}
		proofs[i] = write(fmt.Sprintf("proof-%d", i+1), proof)
	}

	// The erasure, by an administrator.
	base, logs, stop := serve()
	code, admin = call(base, http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"email": "root@example.com", "password": password})
	must(code, http.StatusOK, "admin sign-in", admin)
	adminToken = admin["access_token"].(string)
	code, body = call(base, http.MethodDelete, "/api/v2/admin/users/"+uid+"/personal-data", adminToken, nil)
	if code != http.StatusNoContent {
		for len(logs.lines) > 0 {
			if e := <-logs.lines; e["error"] != nil {
				t.Log(e)
			}
		}
	}
	must(code, http.StatusNoContent, "erase", body)
	code, body = call(base, http.MethodDelete, "/api/v2/admin/users/"+uid+"/personal-data", adminToken, nil)
	must(code, http.StatusNoContent, "erase again", body)

	// The as-of view of the user before the erasure shows the fields erased.
	code, asOf := call(base, http.MethodGet, fmt.Sprintf("/api/v2/admin/users/%s?as_of=%d", uid, 1<<62), adminToken, nil)
	if b, _ := json.Marshal(asOf); code != http.StatusOK || !strings.Contains(string(b), "[erased]") {
		t.Errorf("as-of view after the erasure = %d %s, want [erased] fields", code, b)
	}
	// The NATS stream: every message, read with the reader's credentials. The relay published
	// every event sealed as stored (up to UserErased, the last: tail waits for it).
	_, all, _ := runIdlog(t, env, "events", "export")
	count := len(strings.Split(strings.TrimSpace(all), "\n"))
	code, tailOut, stderr := runIdlog(t, map[string]string{"IDLOG_DATA_DIR": dir, "IDLOG_NATS_PORT": natsPort}, "events", "tail", "-from-start", "-max", fmt.Sprint(count))
	if code != 0 {
		t.Fatalf("events tail: %d %s", code, stderr)
	}
	stop()

	if code, stdout, stderr := runIdlog(t, env, "audit", "verify", "-checkpoint", cp); code != 0 {
		t.Fatalf("verify against the checkpoint taken before the erasure: %d %s %s", code, stdout, stderr)
	}
	code, exported, stderr := runIdlog(t, env, "events", "export")
	if code != 0 {
		t.Fatalf("export: %d %s", code, stderr)
	}
	lines := strings.SplitAfter(exported, "\n")
	keyFile := config.Config{DataDir: dir}.AuditKeyPath()
	noDB := map[string]string{"IDLOG_DATA_DIR": t.TempDir()}
	for i := range n {
		ev := write(fmt.Sprintf("event-%d", i+1), lines[i])
		if code, stdout, stderr := runIdlog(t, noDB, "audit", "check-proof", "-checkpoint", cp, "-public-key", keyFile, "-event", ev, "-proof", proofs[i]); code != 0 || !strings.HasPrefix(stdout, "yes") {
			t.Fatalf("proof %d made before the erasure, after it: exit %d, stdout %q, stderr %q", i+1, code, stdout, stderr)
		}
	}
	// The log after the erasure extends the one of the checkpoint before: a consistency proof
	// between the two signed checkpoints holds.
	if code, stdout, stderr := runIdlog(t, env, "audit", "seal"); code != 0 {
		t.Fatalf("seal after the erasure: %d %s %s", code, stdout, stderr)
	}
	_, newer, _ := runIdlog(t, env, "audit", "checkpoint")
	code, consistency, stderr := runIdlog(t, env, "audit", "prove", "-from", fmt.Sprint(n))
	if code != 0 {
		t.Fatalf("prove -from %d: %d %s", n, code, stderr)
	}
	var cproof audit.ConsistencyProof
	if err := json.Unmarshal([]byte(consistency), &cproof); err != nil {
		t.Fatal(err)
	}
	keyText, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	_, vkey, err := audit.ParseAuditKey(keyText)
	if err != nil {
		t.Fatal(err)
	}
	if before, after, err := audit.CheckConsistency([]byte(note), []byte(newer), vkey, cproof); err != nil || after.Size <= before.Size {
		t.Fatalf("consistency from the checkpoint before the erasure (%d) to the one after (%d): %v", before.Size, after.Size, err)
	}
	if !strings.Contains(exported, `"UserErased"`) {
		t.Error("the export holds no UserErased")
	}

	found := searchTables(t, db, tables, secrets)
	for _, s := range secrets {
		if strings.Contains(exported, s) {
			found = append(found, "export: "+s)
		}
		if strings.Contains(tailOut, s) {
			found = append(found, "IDLOG_EVENTS: "+s)
		}
	}
	for _, f := range found {
		t.Errorf("personal data left after the erasure: %s", f)
	}
	// The addresses the user acted from: none stays readable in their events' envelopes.
	var plainIP int
	if err := db.QueryRow(`SELECT count(*) FROM events WHERE stream_id = '` + "user-" + uid + `' AND CAST(metadata AS TEXT) LIKE '%127.0.0.1%'`).Scan(&plainIP); err != nil || plainIP != 0 {
		t.Errorf("events of the erased user with a plain IP address: %d (%v)", plainIP, err)
	}
	if !strings.Contains(tailOut, "UserErased") {
		t.Error("IDLOG_EVENTS holds no UserErased")
	}
}

// searchTables looks for each needle in every column of every row of every table.
func searchTables(t *testing.T, db *sql.DB, tablesQuery string, needles []string) []string {
	t.Helper()
	rows, err := db.Query(tablesQuery)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		tables = append(tables, name)
	}
	rows.Close()
	if !slices.Contains(tables, "events") || !slices.Contains(tables, "personal_data_keys") || !slices.Contains(tables, "activity") {
		t.Fatalf("the tables searched are %v: not the store's", tables)
	}
	var found []string
	for _, table := range tables {
		rows, err := db.Query(`SELECT * FROM "` + table + `"`)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			for i, v := range vals {
				text := fmt.Sprint(v)
				if b, ok := v.([]byte); ok {
					text = string(b)
				}
				for _, s := range needles {
					if strings.Contains(text, s) {
						found = append(found, fmt.Sprintf("table %s column %s: %s", table, cols[i], s))
					}
				}
			}
		}
		rows.Close()
	}
	return found
}

// With IDLOG_ERASE_ON_DELETE, a user deleting their own account erases their personal data: none
// is left in the database, and their email is free to register again.
func TestSelfDeletionErasesWhenConfigured(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := map[string]string{
		"IDLOG_DATA_DIR": dir, "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "none", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1", "IDLOG_ERASE_ON_DELETE": "true",
	}
	base, _ := startServe(t, env)
	const password = "a long and private passphrase"
	call := func(method, path, token string, body any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(t.Context(), method, base+path, strings.NewReader(string(b)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "EraseMeBrowser/1.0")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
	if code, body := call(http.MethodPost, "/api/v2/identity/users", "", map[string]string{"email": "sam.self@example.com", "username": "samself", "password": password}); code != http.StatusCreated {
		t.Fatalf("sign-up = %d %v", code, body)
	}
	code, session := call(http.MethodPost, "/api/v2/identity/sessions", "", map[string]string{"login": "sam.self@example.com", "password": password})
	if code != http.StatusOK {
		t.Fatalf("sign-in = %d %v", code, session)
	}
	token := session["access_token"].(string)
	if code, body := call(http.MethodPost, "/api/v2/resource/profiles", token, map[string]string{"first_name": "Samwisely", "last_name": "Selfdeleter", "country": "FR"}); code != http.StatusCreated {
		t.Fatalf("create profile = %d %v", code, body)
	}
	if code, body := call(http.MethodDelete, "/api/v2/resource/users/me", token, map[string]string{"password": password}); code != http.StatusNoContent {
		t.Fatalf("delete own account = %d %v", code, body)
	}
	db, err := sql.Open("sqlite", sqliteDSN(config.Config{DataDir: dir}.SQLitePath()))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, f := range searchTables(t, db, `SELECT name FROM sqlite_master WHERE type = 'table'`, []string{"sam.self@example.com", "samself", "Samwisely", "Selfdeleter", "EraseMeBrowser/1.0"}) {
		t.Errorf("personal data left after the user's own deletion: %s", f)
	}
	if code, body := call(http.MethodPost, "/api/v2/identity/users", "", map[string]string{"email": "sam.self@example.com", "password": password}); code != http.StatusCreated {
		t.Errorf("sign-up again with the erased user's email = %d %v, want 201", code, body)
	}
}
