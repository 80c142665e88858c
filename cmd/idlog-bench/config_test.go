package main

import (
	"errors"
	"io"
	"testing"
	"time"
)

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:8080", "nats://u:p@127.0.0.2:4222", "postgres://postgres@127.0.0.1:5432/x"} {
		if err := checkLoopback(u); err != nil {
			t.Errorf("checkLoopback(%q) = %v, want nil", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:8080", "http://example.com", "nats://192.168.1.2:4222", "http://0.0.0.0:80"} {
		if err := checkLoopback(u); !errors.Is(err, ErrNotLoopback) {
			t.Errorf("checkLoopback(%q) = %v, want ErrNotLoopback", u, err)
		}
	}
	if _, err := parseFlags([]string{"-url", "http://10.1.2.3:8080"}, io.Discard); !errors.Is(err, ErrNotLoopback) {
		t.Errorf("parseFlags with a remote -url: %v, want ErrNotLoopback", err)
	}
}

func TestMixAndPercentiles(t *testing.T) {
	t.Parallel()
	m, err := parseMix("me=3,spend=1,signup=0")
	if err != nil {
		t.Fatal(err)
	}
	w := newWeighted(m)
	got := map[string]int{}
	for r := range w.total() {
		got[w.pick(r)]++
	}
	if got["me"] != 3 || got["spend"] != 1 || got["signup"] != 0 {
		t.Errorf("picks %v, want me:3 spend:1", got)
	}
	for _, bad := range []string{"", "me=x", "nope=1", "me=0"} {
		if _, err := parseMix(bad); err == nil {
			t.Errorf("parseMix(%q) accepted", bad)
		}
	}
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	p := percentiles(ds)
	if p.p50 != 50*time.Millisecond || p.p95 != 95*time.Millisecond || p.p99 != 99*time.Millisecond || p.max != 100*time.Millisecond {
		t.Errorf("percentiles of 1..100 ms = %+v", p)
	}
}

// Without -url, the bench loads the server IDLOG_HTTP_ADDR points idlog serve at, not whatever
// runs on 8080. Not parallel: it sets the environment.
func TestURLFollowsIDLOGHTTPADDR(t *testing.T) {
	t.Setenv("IDLOG_HTTP_ADDR", "127.0.0.1:18081")
	c, err := parseFlags(nil, io.Discard)
	if err != nil || c.URL != "http://127.0.0.1:18081" {
		t.Errorf("parseFlags with IDLOG_HTTP_ADDR=127.0.0.1:18081: URL %q, %v", c.URL, err)
	}
	if c, err := parseFlags([]string{"-url", "http://127.0.0.1:9"}, io.Discard); err != nil || c.URL != "http://127.0.0.1:9" {
		t.Errorf("-url does not win over IDLOG_HTTP_ADDR: %q, %v", c.URL, err)
	}
	for addr, want := range map[string]string{"": "http://127.0.0.1:8080", "0.0.0.0:8081": "http://127.0.0.1:8081", "[::]:8082": "http://[::1]:8082", ":8083": "http://127.0.0.1:8083"} {
		if got := serverURL(addr); got != want {
			t.Errorf("serverURL(%q) = %q, want %q", addr, got, want)
		}
	}
}
