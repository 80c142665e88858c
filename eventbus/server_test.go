package eventbus_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/idlog/idlog/eventbus"
)

// A taken port stops the embedded server with an error that names it.
func TestEmbeddedServerOnATakenPort(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	_, err = startEmbedded(eventbus.ServerOptions{StoreDir: t.TempDir(), Port: port})
	var perr *eventbus.PortInUseError
	if !errors.Is(err, eventbus.ErrPortInUse) || !errors.As(err, &perr) || perr.Addr != fmt.Sprintf("127.0.0.1:%d", port) {
		t.Errorf("StartServer on a taken port = %v, want a PortInUseError for 127.0.0.1:%d", err, port)
	}
}

// Without a listener the server is reached in-process only, and keeps its streams on disk.
func TestEmbeddedServerWithoutListener(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "nats")
	srv, err := startEmbedded(eventbus.ServerOptions{StoreDir: dir, NoListen: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	if srv.ClientURL() != "" {
		t.Errorf("ClientURL = %q, want none", srv.ClientURL())
	}
	c, err := eventbus.NewClient(eventbus.ClientOptions{Server: srv, Signer: testSigner})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := openSQLite(t)
	o := relayOptions(s, c)
	r, stop := runRelay(t, o)
	events := appendUsers(t, s, 3)
	waitFor(t, 10*time.Second, "the relay to publish in-process", func() bool { return r.Status().Position == events[2].GlobalPosition })
	stop()
	if err := c.Check(context.Background()); err != nil {
		t.Errorf("Check = %v, want nil", err)
	}
	if !strings.Contains(c.URL(), "in-process") {
		t.Errorf("URL = %q, want it to say in-process", c.URL())
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Errorf("no JetStream files under the store directory: %v", err)
	}
}

func TestClientOptionsAreValidated(t *testing.T) {
	t.Parallel()
	for want, o := range map[string]eventbus.ClientOptions{
		"neither URL nor Server":                 {},
		"URL (nats://xxxxx@) is not a list":      {URL: "nats://token@"},
		"MaxBackoff (1s) cannot be lower than M": {URL: "nats://h:4222", MinBackoff: 2 * time.Second, MaxBackoff: time.Second},
	} {
		_, err := eventbus.NewClient(o)
		if !errors.Is(err, eventbus.ErrInvalidOptions) || !strings.Contains(err.Error(), want) {
			t.Errorf("NewClient(%+v) = %v, want ErrInvalidOptions saying %q", o, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "token") {
			t.Errorf("NewClient error shows the token: %v", err)
		}
	}
}

// Dial fails at once, naming the server without its password.
func TestDialNamesTheServerWithoutPassword(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	_, err := eventbus.Dial(eventbus.ClientOptions{URL: fmt.Sprintf("nats://bob:pa%%40ss@127.0.0.1:%d", port), Name: "test", DialTimeout: time.Second})
	want := fmt.Sprintf("nats://bob:xxxxx@127.0.0.1:%d", port)
	if !errors.Is(err, eventbus.ErrNotConnected) || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "pa@ss") || strings.Contains(err.Error(), "pa%40ss") {
		t.Errorf("Dial = %v, want ErrNotConnected naming %s", err, want)
	}
}
