package blobs_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"io"
	"path/filepath"
	"testing"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/idlog/idlog/blobs"
)

// benchStore puts a new 1 MiB file (a scanned document's size) and reads it back, per iteration.
func benchStore(b *testing.B, s blobs.Store) {
	ctx := context.Background()
	file := make([]byte, 1<<20)
	rand.Read(file)
	b.SetBytes(int64(len(file)))
	for i := 0; b.Loop(); i++ {
		binary.LittleEndian.PutUint64(file, uint64(i)) // a new blob each time
		sum := blobs.Sum(file)
		if err := s.Put(ctx, sum, bytes.NewReader(file)); err != nil {
			b.Fatal(err)
		}
		r, err := s.Open(ctx, sum)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, r)
		r.Close()
	}
}

// BenchmarkBlobs compares the directory store with the S3 store on a local S3-compatible server
// (moto): report the ratio of the two from one run.
func BenchmarkBlobs(b *testing.B) {
	b.Run("dir", func(b *testing.B) {
		d, err := blobs.NewDir(filepath.Join(b.TempDir(), "blobs"))
		if err != nil {
			b.Fatal(err)
		}
		benchStore(b, d)
	})
	b.Run("s3", func(b *testing.B) {
		endpoint := s3Server(b)
		client, err := minio.New(endpoint[len("http://"):], &minio.Options{Creds: credentials.NewStaticV4("test", "testsecret", "")})
		if err != nil {
			b.Fatal(err)
		}
		if err := client.MakeBucket(context.Background(), "bench", minio.MakeBucketOptions{Region: "us-east-1"}); err != nil {
			b.Fatal(err)
		}
		s, err := blobs.NewS3(blobs.S3Options{Endpoint: endpoint, Bucket: "bench", Region: "us-east-1", AccessKey: "test", SecretKey: "testsecret"})
		if err != nil {
			b.Fatal(err)
		}
		benchStore(b, s)
	})
}
