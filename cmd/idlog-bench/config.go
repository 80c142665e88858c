package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Operations of the mix, in the order the report lists them.
const (
	opSignUp   = "signup"
	opSignIn   = "signin"
	opMe       = "me"
	opLabel    = "label"
	opSpend    = "spend"
	opActivity = "activity"
)

var allOps = []string{opSignUp, opSignIn, opMe, opLabel, opSpend, opActivity}

// ErrNotLoopback: a target is not on this machine.
var ErrNotLoopback = errors.New("not a loopback address")

type config struct {
	URL         string
	Clients     int
	Requests    int
	Duration    time.Duration
	Mix         map[string]int
	Users       int
	AdminEmail  string
	AdminPass   string
	NATSURL     string
	NATSCreds   string // NKEY seed file for NATS, the embedded server's reader
	DatabaseURL string
	SQLitePath  string
	Baseline    time.Duration
	Argon2      argon2Params
	JSON        bool
	Timeout     time.Duration
}

type argon2Params struct {
	MemoryKiB   uint32 `json:"memory_kib"`
	Iterations  uint32 `json:"iterations"`
	Parallelism uint8  `json:"parallelism"`
}

// serverURL is the base URL of an idlog serve listening on addr (IDLOG_HTTP_ADDR; its default
// when empty). A server on every interface is reached on loopback.
func serverURL(addr string) string {
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr // checkLoopback says what is wrong with it
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// envOr is the environment variable's value, or def when it is unset or empty.
func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("idlog-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.URL, "url", serverURL(os.Getenv("IDLOG_HTTP_ADDR")), "base `URL` of the idlog server (loopback only); by default the one IDLOG_HTTP_ADDR gives idlog serve")
	fs.IntVar(&c.Clients, "clients", 8, "concurrent clients")
	fs.IntVar(&c.Requests, "requests", 0, "stop after `n` requests in all (0: run for -duration)")
	fs.DurationVar(&c.Duration, "duration", 30*time.Second, "how long to run when -requests is 0")
	mix := fs.String("mix", "signup=1,signin=1,me=4,label=2,spend=2,activity=2", "weights of the operations: `op=weight,...` among "+strings.Join(allOps, ", "))
	fs.IntVar(&c.Users, "users", 32, "users signed up before the run, whose tokens the signed-in operations use")
	fs.StringVar(&c.AdminEmail, "admin-email", envOr("IDLOG_BENCH_ADMIN_EMAIL", ""), "`email` of an admin (made with `idlog users create --role admin`): reads projection lag and credits the users' wallets; env IDLOG_BENCH_ADMIN_EMAIL")
	fs.StringVar(&c.AdminPass, "admin-password", "", "the admin's password; better in env IDLOG_BENCH_ADMIN_PASSWORD, which it defaults to")
	fs.StringVar(&c.NATSURL, "nats-url", "", "`URL` of the server's NATS (loopback only), to measure end-to-end lag on idlog.events.>")
	fs.StringVar(&c.NATSCreds, "nats-creds", "", "NKEY seed `file` to connect to NATS with: <data dir>/keys/nats-reader.nk for the embedded server")
	fs.StringVar(&c.DatabaseURL, "database-url", "", "the server's PostgreSQL `URL`, for the INSERT baseline")
	fs.StringVar(&c.SQLitePath, "sqlite", "", "the server's SQLite `file` (<data dir>/idlog.db), for the INSERT baseline")
	fs.DurationVar(&c.Baseline, "baseline-duration", 5*time.Second, "how long each baseline runs")
	fs.DurationVar(&c.Timeout, "timeout", 30*time.Second, "timeout of one request")
	fs.BoolVar(&c.JSON, "json", false, "print the report as JSON")
	mem := fs.Uint("argon2-memory", uintEnv("IDLOG_ARGON2_MEMORY", 19456), "argon2id memory in KiB, as the server's (env IDLOG_ARGON2_MEMORY)")
	it := fs.Uint("argon2-iterations", uintEnv("IDLOG_ARGON2_ITERATIONS", 2), "argon2id iterations, as the server's (env IDLOG_ARGON2_ITERATIONS)")
	par := fs.Uint("argon2-parallelism", uintEnv("IDLOG_ARGON2_PARALLELISM", 1), "argon2id parallelism, as the server's (env IDLOG_ARGON2_PARALLELISM)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.AdminPass == "" {
		c.AdminPass = os.Getenv("IDLOG_BENCH_ADMIN_PASSWORD")
	}
	c.Argon2 = argon2Params{MemoryKiB: uint32(*mem), Iterations: uint32(*it), Parallelism: uint8(*par)}
	if *mem == 0 || *it == 0 || *par == 0 || *par > 255 {
		return c, fmt.Errorf("invalid argon2 parameters %d/%d/%d", *mem, *it, *par)
	}
	var err error
	if c.Mix, err = parseMix(*mix); err != nil {
		return c, err
	}
	if c.Clients < 1 || c.Users < 1 || c.Requests < 0 || (c.Requests == 0 && c.Duration <= 0) {
		return c, errors.New("-clients and -users must be at least 1, and -requests or -duration positive")
	}
	if c.DatabaseURL != "" && c.SQLitePath != "" {
		return c, errors.New("give -database-url or -sqlite, not both")
	}
	if err := checkLoopback(c.URL); err != nil {
		return c, fmt.Errorf("-url: %w", err)
	}
	if c.NATSURL != "" {
		if err := checkLoopback(c.NATSURL); err != nil {
			return c, fmt.Errorf("-nats-url: %w", err)
		}
	}
	if c.DatabaseURL != "" {
		if err := checkLoopback(c.DatabaseURL); err != nil {
			return c, fmt.Errorf("-database-url: %w", err)
		}
	}
	if (c.AdminEmail == "") != (c.AdminPass == "") {
		return c, errors.New("give both the admin's email and password, or neither")
	}
	return c, nil
}

func uintEnv(name string, def uint) uint {
	if v, err := strconv.ParseUint(os.Getenv(name), 10, 32); err == nil {
		return uint(v)
	}
	return def
}

// parseMix reads "op=weight,..."; weights are whole numbers, 0 leaves an operation out.
func parseMix(s string) (map[string]int, error) {
	m := map[string]int{}
	total := 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, ok := strings.Cut(part, "=")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 0 {
			return nil, fmt.Errorf("-mix: %q: want op=weight with a whole weight", part)
		}
		known := false
		for _, op := range allOps {
			known = known || op == name
		}
		if !known {
			return nil, fmt.Errorf("-mix: unknown operation %q (known: %s)", name, strings.Join(allOps, ", "))
		}
		m[name] = n
		total += n
	}
	if total == 0 {
		return nil, errors.New("-mix: no operation has a weight")
	}
	return m, nil
}

// checkLoopback refuses a URL whose host is not a loopback address. Names other than localhost
// are refused rather than resolved: a name could resolve elsewhere tomorrow.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q: %w", redact(raw), err)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%q has no host", redact(raw))
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: %w", redact(raw), ErrNotLoopback)
	}
	return nil
}

// redact hides a password inside a URL.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

// weighted picks operations in proportion to their weights.
type weighted struct {
	ops []string
	cum []int
}

func newWeighted(m map[string]int) weighted {
	var w weighted
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	total := 0
	for _, k := range names {
		if m[k] == 0 {
			continue
		}
		total += m[k]
		w.ops = append(w.ops, k)
		w.cum = append(w.cum, total)
	}
	return w
}

// pick maps r in [0, total) to an operation.
func (w weighted) pick(r int) string {
	i := sort.SearchInts(w.cum, r+1)
	return w.ops[i]
}

func (w weighted) total() int { return w.cum[len(w.cum)-1] }
