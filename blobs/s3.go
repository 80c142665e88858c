package blobs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Options configure NewS3: an S3-compatible service (AWS S3, MinIO, Ceph, ...).
type S3Options struct {
	// Endpoint is the service's URL, http:// or https:// (https for anything but a local test).
	Endpoint string
	// Bucket must exist; Prefix, when set, starts every object's key ("documents/", say).
	Bucket, Prefix string
	Region         string
	// AccessKey and SecretKey are the service's credentials.
	AccessKey, SecretKey string
}

// S3 is a Store in a bucket of an S3-compatible service, for replicas that do not share a disk.
// Objects are named Prefix + the SHA-256 of their content, so every replica finds every blob.
type S3 struct {
	client         *minio.Client
	bucket, prefix string
}

// NewS3 returns the store over o. It checks the options, not the service: the first Put or Open
// does.
func NewS3(o S3Options) (*S3, error) {
	u, err := url.Parse(o.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("blobs: S3 endpoint (%q) must be http(s)://host[:port]", o.Endpoint)
	}
	if o.Bucket == "" {
		return nil, errors.New("blobs: S3 bucket is empty")
	}
	if o.AccessKey == "" || o.SecretKey == "" {
		return nil, errors.New("blobs: S3 access key or secret key is empty")
	}
	client, err := minio.New(u.Host, &minio.Options{
		Creds: credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""), Secure: u.Scheme == "https", Region: o.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("blobs: S3 client: %w", err)
	}
	return &S3{client: client, bucket: o.Bucket, prefix: strings.TrimPrefix(o.Prefix, "/")}, nil
}

func (s *S3) key(sum string) string { return s.prefix + sum }

func notFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NotFound"
}

// Put implements Store. The bytes are read whole (documents are small) and hashed before
// anything is sent, so a wrong hash stores nothing.
func (s *S3) Put(ctx context.Context, sum string, r io.Reader) error {
	if err := checkSum(sum); err != nil {
		return err
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return fmt.Errorf("blobs: read %s: %w", sum, err)
	}
	if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("%w: want %s", ErrHashMismatch, sum)
	}
	// Written even when it is there: its LastModified is the sweeper's grace (a document may
	// be about to name it).
	_, err = s.client.PutObject(ctx, s.bucket, s.key(sum), bytes.NewReader(b), int64(len(b)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", SendContentMd5: true})
	if err != nil {
		return fmt.Errorf("blobs: S3 put %s: %w", sum, err)
	}
	return nil
}

// Open implements Store.
func (s *S3) Open(ctx context.Context, sum string) (io.ReadCloser, error) {
	if err := checkSum(sum); err != nil {
		return nil, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, s.key(sum), minio.GetObjectOptions{})
	if err == nil {
		// GetObject is lazy: Stat makes the request, and says whether the object is there.
		_, err = obj.Stat()
	}
	if err != nil {
		if obj != nil {
			obj.Close()
		}
		if notFound(err) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, sum)
		}
		return nil, fmt.Errorf("blobs: S3 get %s: %w", sum, err)
	}
	return obj, nil
}

var _ Store = (*S3)(nil)

// ParseS3URL reads the one-setting form of S3Options:
// http(s)://ACCESS_KEY:SECRET_KEY@host[:port]/bucket[/prefix][?region=REGION].
func ParseS3URL(s string) (S3Options, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return S3Options{}, errors.New("want http(s)://ACCESS_KEY:SECRET_KEY@host[:port]/bucket[/prefix]")
	}
	secret, _ := u.User.Password()
	if u.User.Username() == "" || secret == "" {
		return S3Options{}, errors.New("names no access key and secret key (ACCESS_KEY:SECRET_KEY@)")
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if bucket == "" {
		return S3Options{}, errors.New("names no bucket (/bucket after the host)")
	}
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return S3Options{
		Endpoint: u.Scheme + "://" + u.Host, Bucket: bucket, Prefix: prefix, Region: u.Query().Get("region"),
		AccessKey: u.User.Username(), SecretKey: secret,
	}, nil
}
