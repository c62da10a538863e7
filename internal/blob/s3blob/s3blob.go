// Package s3blob is the blob port on Amazon S3 (aws-sdk-go-v2). It passes the
// blobtest conformance suite against fauxqs and moto on loopback, less the
// cases docs/emulators.md lists for each.
//
// PutIfAbsent is PutObject with If-None-Match: * (S3 conditional writes, which
// need only s3:PutObject). S3 answers 412 PreconditionFailed when the key holds
// an object (mapped to blob.ErrExists) and 409 ConditionalRequestConflict when
// a concurrent conditional write on the key is in flight; that is retried
// (conflictRetries times, with a short growing pause), since the next attempt
// is decided: 412 if the other write won, success if it failed. One ambiguity
// stays, as with any conditional write: if the SDK retries an attempt whose
// success answer was lost (a timeout, a reset connection), the retry meets its
// own object and reports ErrExists. A caller that must tell the two apart puts
// something unique in the data and compares on ErrExists.
package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/facefleet/facefleet/internal/bigalloc"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/facefleet/facefleet/internal/blob"
)

// Options tune the adapter.
type Options struct {
	// MaxObjectBytes bounds what Get reads into memory (0: 64 MiB); a larger
	// object is an error rather than an out-of-memory.
	MaxObjectBytes int64
}

const defaultMaxObject = 64 << 20

// Store is one bucket.
type Store struct {
	client *s3.Client
	bucket string
	max    int64
}

var _ blob.Store = (*Store)(nil)

// New returns the store for bucket.
func New(client *s3.Client, bucket string, opts ...Options) (*Store, error) {
	if client == nil {
		return nil, errors.New("s3blob: nil S3 client")
	}
	if bucket == "" {
		return nil, errors.New("s3blob: empty bucket name")
	}
	var o Options
	if len(opts) > 0 {
		o = opts[0]
	}
	if o.MaxObjectBytes < 0 {
		return nil, fmt.Errorf("s3blob: MaxObjectBytes %d is negative", o.MaxObjectBytes)
	}
	if o.MaxObjectBytes == 0 {
		o.MaxObjectBytes = defaultMaxObject
	}
	return &Store{client: client, bucket: bucket, max: o.MaxObjectBytes}, nil
}

// Bucket is the bucket's name.
func (s *Store) Bucket() string { return s.bucket }

// checkKey applies the port's key rules, so a key fileblob refuses is refused
// here too (S3 itself would accept it).
func checkKey(key string) error {
	if err := blob.ValidateKey(key); err != nil {
		return fmt.Errorf("s3blob: %w", err)
	}
	return nil
}

// etag returns S3's ETag exactly as S3 sends it (the quoted content MD5 for a
// single-part put), adding the quotes if an emulator left them off.
func etag(p *string) string {
	e := aws.ToString(p)
	if e != "" && !strings.HasPrefix(e, `"`) {
		e = `"` + e + `"`
	}
	return e
}

// Put writes data under key.
func (s *Store) Put(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
	}
	if contentType == "" {
		contentType = blob.DefaultContentType
	}
	in.ContentType = aws.String(contentType)
	out, err := s.client.PutObject(ctx, in)
	if err != nil {
		return "", s.wrap("put", key, err)
	}
	return etag(out.ETag), nil
}

// conflictRetries bounds the attempts after a 409 ConditionalRequestConflict;
// conflictPause is the pause before the first retry, doubled for each next.
const (
	conflictRetries = 4
	conflictPause   = 25 * time.Millisecond
)

// PutIfAbsent writes data under key unless an object has it: PutObject with
// If-None-Match: *. A taken key gives an error wrapping blob.ErrExists.
func (s *Store) PutIfAbsent(ctx context.Context, key string, data []byte, contentType string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	if contentType == "" {
		contentType = blob.DefaultContentType
	}
	pause := conflictPause
	for attempt := 0; ; attempt++ {
		out, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        aws.String(s.bucket),
			Key:           aws.String(key),
			Body:          bytes.NewReader(data),
			ContentLength: aws.Int64(int64(len(data))),
			ContentType:   aws.String(contentType),
			IfNoneMatch:   aws.String("*"),
		})
		if err == nil {
			return etag(out.ETag), nil
		}
		switch {
		case hasStatus(err, http.StatusPreconditionFailed):
			return "", fmt.Errorf("s3blob: put-if-absent s3://%s/%s: %w", s.bucket, key, blob.ErrExists)
		case !hasStatus(err, http.StatusConflict):
			return "", s.wrap("put-if-absent", key, err)
		case attempt == conflictRetries:
			return "", fmt.Errorf("s3blob: put-if-absent s3://%s/%s: still conflicting with concurrent writes after %d attempts: %w", s.bucket, key, attempt+1, err)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("s3blob: put-if-absent s3://%s/%s: waiting to retry a conflict: %w", s.bucket, key, ctx.Err())
		case <-time.After(pause):
		}
		pause *= 2
	}
}

// hasStatus reports whether err is an S3 answer with HTTP status code.
func hasStatus(err error, code int) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == code
}

// Get returns the object's bytes and attributes.
func (s *Store) Get(ctx context.Context, key string) ([]byte, blob.Attributes, error) {
	if err := checkKey(key); err != nil {
		return nil, blob.Attributes{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return nil, blob.Attributes{}, s.wrap("get", key, err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > s.max {
		return nil, blob.Attributes{}, fmt.Errorf("s3blob: s3://%s/%s is %d bytes, over the %d-byte read limit", s.bucket, key, n, s.max)
	}
	var data []byte
	if n := aws.ToInt64(out.ContentLength); n > 0 {
		// The size is known: read into one buffer (huge pages for a
		// gallery snapshot), not a doubling one.
		data = bigalloc.Slice[byte](int(n))
		if _, err = io.ReadFull(out.Body, data); err == nil {
			var extra [1]byte
			if k, _ := out.Body.Read(extra[:]); k > 0 {
				err = fmt.Errorf("more than the %d bytes announced", n)
			}
		}
	} else {
		data, err = io.ReadAll(io.LimitReader(out.Body, s.max+1))
	}
	if err != nil {
		return nil, blob.Attributes{}, fmt.Errorf("s3blob: read s3://%s/%s: %w", s.bucket, key, err)
	}
	if int64(len(data)) > s.max {
		return nil, blob.Attributes{}, fmt.Errorf("s3blob: s3://%s/%s exceeds the %d-byte read limit", s.bucket, key, s.max)
	}
	a := blob.Attributes{
		Key:         key,
		ContentType: aws.ToString(out.ContentType),
		ETag:        etag(out.ETag),
		Size:        int64(len(data)),
		Modified:    aws.ToTime(out.LastModified),
	}
	return data, a, nil
}

// Head returns the object's attributes.
func (s *Store) Head(ctx context.Context, key string) (blob.Attributes, error) {
	if err := checkKey(key); err != nil {
		return blob.Attributes{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		return blob.Attributes{}, s.wrap("head", key, err)
	}
	return blob.Attributes{
		Key:         key,
		ContentType: aws.ToString(out.ContentType),
		ETag:        etag(out.ETag),
		Size:        aws.ToInt64(out.ContentLength),
		Modified:    aws.ToTime(out.LastModified),
	}, nil
}

// List returns the objects under prefix, sorted by key. ListObjectsV2 does not
// report content types, so ContentType is empty in the results; Head an object
// for it.
func (s *Store) List(ctx context.Context, prefix string) ([]blob.Attributes, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(s.bucket)}
	if prefix != "" {
		in.Prefix = aws.String(prefix)
	}
	var res []blob.Attributes
	p := s3.NewListObjectsV2Paginator(s.client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.wrap("list", prefix, err)
		}
		for _, o := range page.Contents {
			res = append(res, blob.Attributes{
				Key:      aws.ToString(o.Key),
				ETag:     etag(o.ETag),
				Size:     aws.ToInt64(o.Size),
				Modified: aws.ToTime(o.LastModified),
			})
		}
	}
	sort.Slice(res, func(i, j int) bool { return res[i].Key < res[j].Key })
	return res, nil
}

// Delete removes key (no error when it is absent, as in S3).
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(key)})
	if err != nil {
		err = s.wrap("delete", key, err)
		if errors.Is(err, blob.ErrNotFound) {
			return nil
		}
		return err
	}
	return nil
}

// wrap maps a missing object (NoSuchKey on GET, a bare 404 on HEAD) onto
// blob.ErrNotFound. A missing bucket is reported as itself: it is a
// configuration error, not an absent object.
func (s *Store) wrap(op, key string, err error) error {
	var (
		noKey    *types.NoSuchKey
		notFound *types.NotFound
	)
	if errors.As(err, &noKey) || errors.As(err, &notFound) {
		return fmt.Errorf("s3blob: %s s3://%s/%s: %w", op, s.bucket, key, blob.ErrNotFound)
	}
	var noBucket *types.NoSuchBucket
	if errors.As(err, &noBucket) {
		return fmt.Errorf("s3blob: %s s3://%s/%s: bucket %q does not exist: %w", op, s.bucket, key, s.bucket, err)
	}
	var re *smithyhttp.ResponseError
	if op == "head" && errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
		return fmt.Errorf("s3blob: %s s3://%s/%s: %w", op, s.bucket, key, blob.ErrNotFound)
	}
	return fmt.Errorf("s3blob: %s s3://%s/%s: %w", op, s.bucket, key, err)
}
