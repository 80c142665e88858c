package esdb_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/idlog/idlog/eventstore"
	"github.com/idlog/idlog/eventstore/esdb"
)

func TestExpectedRevision(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   eventstore.ExpectedVersion
		want esdbclient.ExpectedRevision
	}{
		{eventstore.Any, esdbclient.Any{}},
		{eventstore.NoStream, esdbclient.NoStream{}},
		{eventstore.Exactly(0), esdbclient.NoStream{}},
		{eventstore.Exactly(1), esdbclient.Revision(0)},
		{eventstore.Exactly(42), esdbclient.Revision(41)},
	}
	for _, c := range cases {
		got, err := esdb.ExpectedRevision(c.in)
		if err != nil || got != c.want {
			t.Errorf("ExpectedRevision(%s) = %#v, %v; want %#v", c.in, got, err, c.want)
		}
	}
	if _, err := esdb.ExpectedRevision(-2); !errors.Is(err, eventstore.ErrInvalidAppend) {
		t.Errorf("ExpectedRevision(-2): err = %v, want ErrInvalidAppend", err)
	}
}

func TestReservationStream(t *testing.T) {
	t.Parallel()
	const key = "email:alice@example.com"
	// sha256("email:alice@example.com"), computed independently with sha256sum.
	want := "t1-idlog-unique-889e87fc03d0477823a739f269555750a3fd94dacfd1694589bf2bc4eef07b55"
	if got := esdb.ReservationStream("t1-", key); got != want {
		t.Errorf("ReservationStream = %q, want %q", got, want)
	}
	if got := esdb.ReservationStream("t1-", key); strings.Contains(got, "alice") {
		t.Errorf("reservation stream %q shows the key", got)
	}
	if esdb.ReservationStream("t1-", key) == esdb.ReservationStream("t2-", key) {
		t.Error("two namespaces share a reservation stream")
	}
	if esdb.ReservationStream("t1-", key) == esdb.ReservationStream("t1-", "email:bob@example.com") {
		t.Error("two keys share a reservation stream")
	}
	// Callers cannot write into it: it falls under the adapter's reserved prefix.
	if err := esdb.CheckStreamID(esdb.ReservationStream("", key)); !errors.Is(err, eventstore.ErrInvalidAppend) {
		t.Errorf("a caller stream named like a reservation stream: err = %v, want ErrInvalidAppend", err)
	}
}

func TestCheckStreamID(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"", "$stats-1", "$$user-1", "idlog-unique-abc", "idlog-checkpoint-relay"} {
		if err := esdb.CheckStreamID(bad); !errors.Is(err, eventstore.ErrInvalidAppend) {
			t.Errorf("CheckStreamID(%q) = %v, want ErrInvalidAppend", bad, err)
		}
	}
	for _, good := range []string{"user-ID0123456789", "wallet-1", "idlog", "user-$1"} {
		if err := esdb.CheckStreamID(good); err != nil {
			t.Errorf("CheckStreamID(%q) = %v, want nil", good, err)
		}
	}
}

func TestOpenRejectsBadOptions(t *testing.T) {
	t.Parallel()
	const password = "s3cr3t-Pw"
	cases := []struct {
		name  string
		o     esdb.Options
		shown string // the error must name this
	}{
		{"empty URL", esdb.Options{}, "URL is empty"},
		{"wrong scheme", esdb.Options{URL: "http://admin:" + password + "@127.0.0.1:2113"}, "http://admin:xxxxx@127.0.0.1:2113"},
		{"bad setting", esdb.Options{URL: "esdb://admin:" + password + "@127.0.0.1:2113?tls=maybe"}, "esdb://admin:xxxxx@127.0.0.1:2113?tls=maybe"},
		{"bad port", esdb.Options{URL: "esdb://admin:" + password + "@127.0.0.1:port"}, "esdb://admin:xxxxx@127.0.0.1:port"},
		{"bad cluster seed", esdb.Options{URL: "esdb://admin:" + password + "@a:1,b:x"}, "esdb://admin:xxxxx@a:1,b:x"},
		{"escaped password", esdb.Options{URL: "esdb://admin:" + password + "%40x@127.0.0.1:port"}, "esdb://admin:xxxxx@127.0.0.1:port"},
		{"no scheme", esdb.Options{URL: "admin:" + password + "@127.0.0.1:2113"}, "admin:xxxxx@127.0.0.1:2113"},
		{"namespace with $", esdb.Options{URL: "esdb://127.0.0.1:2113?tls=false", Namespace: "$sys"}, `"$sys"`},
		{"namespace with space", esdb.Options{URL: "esdb://127.0.0.1:2113?tls=false", Namespace: "a b"}, `"a b"`},
		{"namespace with slash", esdb.Options{URL: "esdb://127.0.0.1:2113?tls=false", Namespace: "a/b"}, `"a/b"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s, err := esdb.Open(context.Background(), c.o)
			if err == nil {
				s.Close()
				t.Fatal("Open accepted the options")
			}
			if !errors.Is(err, esdb.ErrInvalidOptions) {
				t.Errorf("err = %v, want ErrInvalidOptions", err)
			}
			if !strings.Contains(err.Error(), c.shown) {
				t.Errorf("err = %q, want it to name %q", err, c.shown)
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("err = %q shows the password", err)
			}
		})
	}
}

func TestServerFilter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ns, prefix string
		match      []string
		miss       []string
	}{
		{"t1-", "", []string{"t1-user-1", "t1-idlog-unique-ab"}, []string{"t2-user-1", "$stats-1", "$$t1-user-1", "xt1-user"}},
		{"t1-", "user_", []string{"t1-user_x"}, []string{"t1-userAx", "t1-user-1"}},
		{"t1-", "us%r", []string{"t1-us%r-3"}, []string{"t1-user-3"}},
		{"t.1-", "a+b(", []string{"t.1-a+b(c"}, []string{"tx1-a+b(c", "t.1-aab(c"}},
		{"", "", []string{"user-1", "idlog-checkpoint-x"}, []string{"$stats-127.0.0.1:2113", "$$user-1"}},
		{"", "user-", []string{"user-1"}, []string{"wallet-1", "$user-1"}},
	}
	for _, c := range cases {
		f := esdb.ServerFilter(c.ns, c.prefix)
		if f.Type != esdbclient.StreamFilterType || len(f.Prefixes) != 0 {
			t.Fatalf("ServerFilter(%q, %q) = %+v, want a stream-name regex", c.ns, c.prefix, f)
		}
		// Go's RE2 and the server's .NET engine agree on anchors, escapes and negated classes.
		re := regexp.MustCompile(f.Regex)
		for _, s := range c.match {
			if !re.MatchString(s) {
				t.Errorf("regex %s (ns %q, prefix %q) misses %q", re, c.ns, c.prefix, s)
			}
		}
		for _, s := range c.miss {
			if re.MatchString(s) {
				t.Errorf("regex %s (ns %q, prefix %q) matches %q", re, c.ns, c.prefix, s)
			}
		}
	}
}

func TestVisible(t *testing.T) {
	t.Parallel()
	cases := []struct {
		ns, esStream, typ string
		want              string // "" means not visible
	}{
		{"t1-", "t1-user-1", "UserRegistered", "user-1"},
		{"t1-", "t2-user-1", "UserRegistered", ""},
		{"t1-", "t1-user-1", "$>", ""},
		{"t1-", "t1-idlog-unique-ab", "KeyClaimed", ""},
		{"t1-", "t1-idlog-checkpoint-relay", "CheckpointSet", ""},
		{"", "$stats-1", "$statsCollected", ""},
		{"", "$$user-1", "$metadata", ""},
		{"", "user-1", "UserRegistered", "user-1"},
	}
	for _, c := range cases {
		got, ok := esdb.Visible(c.ns, c.esStream, c.typ)
		if ok != (c.want != "") || got != c.want {
			t.Errorf("Visible(%q, %q, %q) = %q, %v; want %q", c.ns, c.esStream, c.typ, got, ok, c.want)
		}
	}
}

func TestKeySets(t *testing.T) {
	t.Parallel()
	claims, releases, keep := esdb.KeySets([]string{"b", "a", "b", "c"}, []string{"z", "c", "z", "y"})
	if fmt.Sprint(claims) != "[a b c]" || fmt.Sprint(releases) != "[y z]" || len(keep) != 1 || !keep["c"] {
		t.Errorf("KeySets = %v, %v, %v; want [a b c], [y z], map[c:true]", claims, releases, keep)
	}
}

func TestOpenFailsWithoutServer(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := esdb.Open(ctx, esdb.Options{URL: "esdb://admin:s3cr3t-Pw@" + addr + "?tls=false"})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with no server")
	}
	if !strings.Contains(err.Error(), "esdb://admin:xxxxx@"+addr) || strings.Contains(err.Error(), "s3cr3t-Pw") {
		t.Errorf("err = %q, want it to name the URL with its password masked", err)
	}
	if errors.Is(err, esdb.ErrInvalidOptions) {
		t.Errorf("err = %v: an unreachable server is not invalid options", err)
	}
}
