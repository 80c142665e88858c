package eventbus_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/idlog/idlog/eventbus"
)

// testPKI is a certificate authority with a server certificate for 127.0.0.1 and a client
// certificate, their PEM files in a directory.
type testPKI struct {
	dir                string
	pool               *x509.CertPool
	server             tls.Certificate
	caFile, cert, keyF string
}

func newTestPKI(t testing.TB) testPKI {
	t.Helper()
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "idlog test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, usage x509.ExtKeyUsage, ips []net.IP) (certPEM, keyPEM []byte) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "idlog test"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	}
	p := testPKI{dir: dir, pool: x509.NewCertPool(), caFile: filepath.Join(dir, "ca.pem"), cert: filepath.Join(dir, "client.pem"), keyF: filepath.Join(dir, "client-key.pem")}
	p.pool.AddCert(ca)
	scert, skey := issue(2, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)})
	if p.server, err = tls.X509KeyPair(scert, skey); err != nil {
		t.Fatal(err)
	}
	ccert, ckey := issue(3, x509.ExtKeyUsageClientAuth, nil)
	for f, b := range map[string][]byte{p.caFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), p.cert: ccert, p.keyF: ckey} {
		if err := os.WriteFile(f, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// An external server that wants an NKEY and a client certificate over TLS: idlog reaches it with
// IDLOG_NATS_CREDS and IDLOG_NATS_TLS_*, and fails, naming why, without them.
func TestExternalServerWithCredentialsAndTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := user.PublicKey()
	seed, _ := user.Seed()
	creds := filepath.Join(t.TempDir(), "idlog.nk")
	if err := os.WriteFile(creds, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
		Nkeys: []*server.NkeyUser{{Nkey: pub}},
		TLS:   true, TLSVerify: true, TLSTimeout: 2,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.server}, ClientCAs: pki.pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(ns.Shutdown)
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS with TLS not ready")
	}
	url := ns.ClientURL()
	opts := eventbus.ClientOptions{URL: url, Credentials: creds, TLSCAFile: pki.caFile, TLSCertFile: pki.cert, TLSKeyFile: pki.keyF, DialTimeout: 2 * time.Second}

	nc, err := eventbus.Dial(opts)
	if err != nil {
		t.Fatalf("Dial with the credentials and TLS files = %v", err)
	}
	defer nc.Close()
	if !nc.TLSRequired() {
		t.Error("the connection is not over TLS")
	}

	// The relay publishes through it.
	opts.Signer, opts.MinBackoff, opts.MaxBackoff = testSigner, 20*time.Millisecond, 300*time.Millisecond
	c, err := eventbus.NewClient(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := openSQLite(t)
	r, stop := runRelay(t, relayOptions(s, c))
	events := appendUsers(t, s, 3)
	waitFor(t, 10*time.Second, "the relay to publish over TLS", func() bool { return r.Status().Position == events[2].GlobalPosition })
	stop()
	checkExactlyOnceInOrder(t, nc, s)

	for name, tt := range map[string]struct {
		change func(o *eventbus.ClientOptions)
		want   error
	}{
		"no credentials":        {func(o *eventbus.ClientOptions) { o.Credentials = "" }, nats.ErrAuthorization},
		"another NKEY":          {func(o *eventbus.ClientOptions) { o.Credentials = strangerSeed(t) }, nats.ErrAuthorization},
		"no client certificate": {func(o *eventbus.ClientOptions) { o.TLSCertFile, o.TLSKeyFile = "", "" }, eventbus.ErrNotConnected},
	} {
		o := opts
		o.Signer = nil
		tt.change(&o)
		if nc, err := eventbus.Dial(o); !errors.Is(err, tt.want) {
			if err == nil {
				nc.Close()
			}
			t.Errorf("%s: Dial = %v, want %v", name, err, tt.want)
		}
	}
	// Without the CA, the server's certificate is not trusted.
	o := opts
	o.Signer, o.TLSCAFile = nil, ""
	if _, err := eventbus.Dial(o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Dial without the CA = %v, want a certificate error", err)
	}
}

// strangerSeed is the seed file of an NKEY no server knows.
func strangerSeed(t testing.TB) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := kp.Seed()
	f := filepath.Join(t.TempDir(), "stranger.nk")
	if err := os.WriteFile(f, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// The TLS and credentials options are checked before any connection: files that do not parse,
// a certificate without its key, and credentials for the embedded server are refused.
func TestClientTLSAndCredentialsOptionsAreValidated(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	jwtNoSeed := filepath.Join(t.TempDir(), "user.creds")
	os.WriteFile(jwtNoSeed, []byte("-----BEGIN NATS USER JWT-----\neyJhbGciOi.x.y\n------END NATS USER JWT------\n"), 0o600)
	srv := startServer(t, t.TempDir(), 0)
	for want, o := range map[string]eventbus.ClientOptions{
		"holds no PEM certificate":          {URL: "nats://127.0.0.1:1", TLSCAFile: notPEM},
		"go together":                       {URL: "nats://127.0.0.1:1", TLSCertFile: pki.cert},
		"TLSCertFile (":                     {URL: "nats://127.0.0.1:1", TLSCertFile: pki.cert, TLSKeyFile: pki.caFile},
		"not the embedded Server":           {Server: srv, Credentials: pki.cert},
		"holds a user JWT but no NKEY user": {URL: "nats://127.0.0.1:1", Credentials: jwtNoSeed},
		"neither a user JWT nor an NKEY":    {URL: "nats://127.0.0.1:1", Credentials: pki.cert},
	} {
		o.Signer = testSigner
		if _, err := eventbus.NewClient(o); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewClient(%+v) = %v, want an error saying %q", o, err, want)
		}
	}
}
