package blobs_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/idlog/idlog/blobs"
)

// s3Server starts a real S3-compatible server process (moto's server: .ci/run sets
// IDLOG_TEST_S3_SERVER to it) on a free port and returns its endpoint. Without one the test is
// skipped, except in CI, where it fails.
func s3Server(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("IDLOG_TEST_S3_SERVER")
	if bin == "" {
		var err error
		if bin, err = exec.LookPath("moto_server"); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("no S3-compatible server: set IDLOG_TEST_S3_SERVER (moto_server)")
			}
			t.Skip("no S3-compatible server (moto_server): set IDLOG_TEST_S3_SERVER")
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(bin, "-H", "127.0.0.1", "-p", fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=testsecret")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("%s does not listen on %s", bin, addr)
		}
	}
	return "http://" + addr
}

// TestS3 runs the store contract on a bucket of a real S3-compatible server.
func TestS3(t *testing.T) {
	t.Parallel()
	endpoint := s3Server(t)
	client, err := minio.New(endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4("test", "testsecret", "")})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := client.MakeBucket(ctx, "idlog-blobs", minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := blobs.NewS3(blobs.S3Options{Endpoint: "ftp://x", Bucket: "b", AccessKey: "a", SecretKey: "s"}); err == nil {
		t.Fatal("an ftp endpoint was taken")
	}
	s, err := blobs.NewS3(blobs.S3Options{Endpoint: endpoint, Bucket: "idlog-blobs", Prefix: "documents/", Region: "us-east-1",
		AccessKey: "test", SecretKey: "testsecret"})
	if err != nil {
		t.Fatal(err)
	}
	testStore(t, s)
	// The blob is the bucket's object under the prefix, nothing else.
	var keys []string
	for o := range client.ListObjects(ctx, "idlog-blobs", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	if len(keys) != 1 || keys[0] != "documents/"+blobs.Sum([]byte("%PDF-1.4 a document")) {
		t.Fatalf("objects %v", keys)
	}
	testSweepable(t, s)
}
