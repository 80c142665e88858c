package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The TypeScript client in clients/typescript is generated from the OpenAPI document
// (openapi-typescript) and calls the API with openapi-fetch. This test is the proof that the
// contract is usable from a frontend: against a real idlog serve on SQLite it checks that the
// served document still generates the committed types, that the journey compiles against them,
// and that it runs through sign-up, sign-in, /users/me and sign-out under Node. It also sends a
// request to every documented operation: none may be unknown to the real router.
func TestTypeScriptClientJourney(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("SKIPPED: %s is not installed (Node 20 and npm run the generated TypeScript client; .ci/run installs them)", tool)
		}
	}
	clientDir, err := filepath.Abs(filepath.Join("..", "..", "clients", "typescript"))
	if err != nil {
		t.Fatal(err)
	}
	npmInstall(t, clientDir)

	base := startJourneyServe(t)
	doc := fetchBody(t, base+"/api/v2/openapi.json")

	t.Run("every documented operation is served", func(t *testing.T) {
		everyOperationServed(t, base, doc)
	})

	// The committed types are what the served document generates: a change to the document
	// without `npm run generate` fails here.
	served := filepath.Join(t.TempDir(), "openapi.json")
	if err := os.WriteFile(served, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	generated := filepath.Join(t.TempDir(), "schema.ts")
	npm(t, clientDir, nil, "exec", "--", "openapi-typescript", served, "-o", generated)
	want, err := os.ReadFile(filepath.Join(clientDir, "src", "schema.ts"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(generated); !bytes.Equal(got, want) {
		t.Fatal("clients/typescript/src/schema.ts is not what the served document generates: run `npm run generate` in clients/typescript and commit it")
	}

	// Compiles the journey against the types (a type error fails), then runs it with Node.
	out := npm(t, clientDir, []string{"IDLOG_URL=" + base}, "run", "journey")
	if !strings.Contains(out, "journey complete") {
		t.Fatalf("the journey did not complete:\n%s", out)
	}
	t.Logf("journey:\n%s", out)
}

// npmInstall runs `npm ci` unless node_modules already holds what package-lock.json names.
func npmInstall(t *testing.T, dir string) {
	t.Helper()
	lock, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	stamp := filepath.Join(dir, "node_modules", ".idlog-package-lock.sha256")
	if have, err := os.ReadFile(stamp); err == nil && string(have) == hex.EncodeToString(sum[:]) {
		return
	}
	npm(t, dir, nil, "ci", "--prefer-offline", "--no-audit", "--no-fund")
	if err := os.WriteFile(stamp, []byte(hex.EncodeToString(sum[:])), 0o644); err != nil {
		t.Fatal(err)
	}
}

// npm runs npm in dir and returns its output, failing the test with it if npm fails.
func npm(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("npm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("npm %s: %v", args[0], time.Since(start).Round(time.Millisecond))
	return string(out)
}

// startJourneyServe runs idlog serve on SQLite in a fresh data directory on a free port, stopped when
// the test ends, and returns its base URL.
func startJourneyServe(t *testing.T) string {
	t.Helper()
	env := map[string]string{
		"IDLOG_DATA_DIR": t.TempDir(), "IDLOG_HTTP_ADDR": "127.0.0.1:0", "IDLOG_NATS_PORT": "none", "IDLOG_LOG_FORMAT": "json",
		"IDLOG_ARGON2_MEMORY": "64", "IDLOG_ARGON2_ITERATIONS": "1",
	}
	stderr := &syncBuffer{}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan int, 1)
	go func() {
		served <- run(ctx, []string{"serve"}, &environment{stdout: io.Discard, stderr: stderr, getenv: func(k string) string { return env[k] }})
	}()
	t.Cleanup(func() {
		stop()
		if code := <-served; code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, stderr.String())
		}
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		for l := range strings.SplitSeq(stderr.String(), "\n") {
			var e map[string]any
			if json.Unmarshal([]byte(l), &e) == nil && e["msg"] == "listening" {
				return "http://" + e["addr"].(string)
			}
		}
		select {
		case code := <-served:
			served <- code
			t.Fatalf("serve exited with %d before listening:\n%s", code, stderr.String())
		default:
		}
	}
	t.Fatalf("serve did not listen within 30s:\n%s", stderr.String())
	return ""
}

func fetchBody(t *testing.T, url string) []byte {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", url, res.StatusCode, err, body)
	}
	return body
}

// everyOperationServed sends each documented operation, without credentials or body, to the real
// server: it may be refused, but never as a route or method the router does not know.
func everyOperationServed(t *testing.T, base string, doc []byte) {
	var d struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	methods := []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}
	vars := strings.NewReplacer("{uid}", "ID0000000000", "{key}", "kyc", "{topic}", "all", "{id}", "session")
	n := 0
	for path, item := range d.Paths {
		for m := range item {
			if !slices.Contains(methods, m) {
				continue // parameters, summary...
			}
			n++
			req, err := http.NewRequest(strings.ToUpper(m), base+vars.Replace(path), nil)
			if err != nil {
				t.Fatal(err)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if strings.Contains(string(body), `"route.not_found"`) || strings.Contains(string(body), `"route.method_not_allowed"`) {
				t.Errorf("%s %s is documented, but idlog serve answers %d %s", strings.ToUpper(m), path, res.StatusCode, body)
			}
		}
	}
	if n < 50 {
		t.Fatalf("the served document has %d operations", n)
	}
}
