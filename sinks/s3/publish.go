package s3

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"golang.org/x/sync/errgroup"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/fsys"
	"github.com/sluice-dev/sluice/sinks/buffer"
	"github.com/sluice-dev/sluice/sinks/keys"
)

// Object metadata the sink sets (S3 shows it as x-amz-meta-NAME).
const (
	// MetaSHA256 holds the hex SHA-256 of the object's content; Commit
	// compares it to tell its own object from a foreign one.
	MetaSHA256 = "sluice-sha256"
	// MetaError holds why an object under the error prefix could not be
	// delivered under its own key.
	MetaError = "sluice-error"
)

// Backoff between attempts: doubling from minBackoff up to maxBackoff
// (Firehose retries S3 every 5 seconds), with jitter.
const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 5 * time.Second
)

// publisher uploads sealed outputs.
type publisher struct {
	cfg       *Config
	errPrefix *keys.Template
	// undelivered counts the records of outputs diverted under the error
	// prefix; undeliveredTo is where the latest went.
	undelivered   atomic.Int64
	undeliveredTo atomic.Pointer[string]
}

// object is what a HEAD found.
type object struct {
	exists bool
	sha    string
	size   int64
}

// Publish uploads a sealed output under its key and removes it from
// staging. It is idempotent: an object found under the key (or under the
// error prefix, where an earlier run diverted it) with this output's
// SHA-256 counts as done; an object with other content is never
// replaced. Looking the key up and uploading are retried until cfg.Retry
// has passed, or fail at once for an error no retry fixes; then the
// output goes under the error prefix with the reason, looked up and
// uploaded for cfg.Retry again; if that fails too, Publish fails with
// both reasons and the pipeline stops, to resume from its checkpoint.
func (p *publisher) Publish(ctx context.Context, s buffer.Sealed) error {
	errKey := p.errorKey(s)
	f, err := p.cfg.FS.Open(s.Path)
	if errors.Is(err, fs.ErrNotExist) {
		// Staging is cleaned only after an upload; the object must be
		// in the bucket.
		deadline := p.cfg.Now().Add(p.cfg.Retry)
		for _, key := range []string{s.Key, errKey} {
			obj, err := p.head(ctx, key, deadline)
			if err != nil {
				return err
			}
			if obj.exists {
				return nil
			}
		}
		return fmt.Errorf("sealed output %s for s3://%s/%s is %w; was the object deleted?", path.Base(s.Path), p.cfg.Bucket, s.Key, errNotStaged)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sum, err := fileSHA256(f, s.Size)
	if err != nil {
		return fmt.Errorf("read %s: %w", s.Path, err)
	}
	at, err := p.deliver(ctx, f, s, sum, s.Key, nil, p.cfg.Now().Add(p.cfg.Retry), errKey)
	if err == nil && at == errKey {
		return p.done(f, s) // diverted by an earlier run
	}
	if err == nil {
		return p.uploaded(ctx, f, s, sum)
	}
	var local *localError
	var foreign *foreignError
	if ctx.Err() != nil || errors.As(err, &local) || errors.As(err, &foreign) {
		// The staging disk failing, or an object in the way, is no
		// reason to divert the output.
		return err
	}
	reason := err.Error()
	p.cfg.Logger.Warn("s3: delivery failed; sending the object to the error prefix", "sink", p.cfg.Name, "key", s.Key, "error_key", errKey, "err", err)
	// An attempt that timed out may still have landed: look once more,
	// with a single request.
	if obj, herr := p.head(ctx, s.Key, p.cfg.Now()); herr == nil && obj.exists && obj.sha == sum && obj.size == s.Size {
		return p.uploaded(ctx, f, s, sum)
	}
	meta := map[string]string{MetaError: MetadataValue(reason)}
	if _, err2 := p.deliver(ctx, f, s, sum, errKey, meta, p.cfg.Now().Add(p.cfg.Retry)); err2 != nil {
		return fmt.Errorf("upload s3://%s/%s: %v; and to the error prefix as %s: %w", p.cfg.Bucket, s.Key, reason, errKey, err2)
	}
	where := "s3://" + p.cfg.Bucket + "/" + errKey
	p.cfg.Logger.Error("s3: object not delivered; uploaded under the error prefix", "sink", p.cfg.Name, "key", s.Key, "records", s.Records, "error_output", where, "err", reason)
	if !s.Errors {
		p.undelivered.Add(int64(s.Records))
		p.undeliveredTo.Store(&where)
	}
	return p.done(f, s)
}

// deliver puts the sealed output f under key, unless it is there
// already, or under one of also (where an earlier run diverted it), and
// returns the key it is under. An object at key with other content is a
// *foreignError: it is never replaced, unless it is a torn upload.
func (p *publisher) deliver(ctx context.Context, f fsys.File, s buffer.Sealed, sum, key string, meta map[string]string, deadline time.Time, also ...string) (string, error) {
	torn := false
	for _, k := range append([]string{key}, also...) {
		obj, err := p.head(ctx, k, deadline)
		if err != nil {
			return "", err
		}
		switch {
		case !obj.exists:
			continue
		case obj.sha == sum && obj.size == s.Size:
			return k, nil
		case k == key && obj.torn():
			torn = true
		case k == key:
			return "", &foreignError{fmt.Errorf("s3://%s/%s exists and is not this output (%d bytes, sha256 %q; this output: %d bytes, %s); refusing to replace it: move it away, or check that no other pipeline writes under this prefix with the same names", p.cfg.Bucket, k, obj.size, obj.sha, s.Size, sum)}
		}
	}
	if torn {
		p.cfg.Logger.Warn("s3: replacing an empty object without the sink's checksum, an upload of this output cut short by a crash", "sink", p.cfg.Name, "key", key)
	}
	return key, p.upload(ctx, f, s.Size, key, sum, meta, deadline)
}

// torn reports an object of 0 bytes without the sink's SHA-256: what
// some S3-compatible servers (s3rver) leave under a key when the process
// uploading to it is killed. S3 itself never shows an upload before it
// is whole. Such an object holds no data, so replacing it with the
// output whose upload it is loses nothing; an object the sink wrote
// (with its SHA-256, even of 0 bytes) or with any content is never
// replaced.
func (o object) torn() bool { return o.exists && o.size == 0 && o.sha == "" }

// foreignError is an object in the way of an output.
type foreignError struct{ err error }

func (e *foreignError) Error() string { return e.err.Error() }
func (e *foreignError) Unwrap() error { return e.err }

// uploaded calls Config.Uploaded for an output of records now under its
// key, then removes it from staging.
func (p *publisher) uploaded(ctx context.Context, f fsys.File, s buffer.Sealed, sum string) error {
	if p.cfg.Uploaded != nil && !s.Errors {
		if err := p.cfg.Uploaded(ctx, s, s.Key, sum); err != nil {
			return err
		}
	}
	return p.done(f, s)
}

// done removes a published output from staging. The removal need not be
// durable: if it is lost, the next Publish finds the object and is done.
func (p *publisher) done(f fsys.File, s buffer.Sealed) error {
	_ = f.Close()
	if err := p.cfg.FS.Remove(s.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// errorKey is where s goes when it cannot be delivered: the error prefix,
// rendered at the time its buffer opened, and its file name.
func (p *publisher) errorKey(s buffer.Sealed) string {
	name := path.Base(s.Key)
	opened := s.Opened
	if opened.IsZero() {
		opened = timeFromName(name)
	}
	sum := sha256.Sum256([]byte(s.Key))
	v := keys.Values{Time: opened, ErrorType: engine.DeliveryFailed, Random: randomString(sum[:8])}
	return string(p.errPrefix.Append(nil, &v)) + name
}

// timeFromName reads the time an output's name carries
// (PIPELINE-SINK-yyyy-MM-dd-HH-mm-ss-SEQ.EXT), or the zero time.
func timeFromName(name string) time.Time {
	const layout = "2006-01-02-15-04-05"
	parts := strings.Split(name, "-")
	if len(parts) < 8 {
		return time.Time{}
	}
	t, err := time.Parse(layout, strings.Join(parts[len(parts)-7:len(parts)-1], "-"))
	if err != nil {
		return time.Time{}
	}
	return t
}

func randomString(b []byte) string {
	x := binary.BigEndian.Uint64(b)
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var out [keys.RandomLen]byte
	for i := range out {
		out[i] = digits[x%36]
		x /= 36
	}
	return string(out[:])
}

func fileSHA256(f fsys.File, size int64) (string, error) {
	h := sha256.New()
	n, err := io.Copy(h, io.NewSectionReader(f, 0, size))
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("staged file holds %d bytes, the checkpoint says %d", n, size)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// MetadataValue makes text safe for an HTTP header (S3 metadata):
// printable ASCII, at most 1 KiB.
func MetadataValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	if len(b) > 1024 {
		b = append(b[:1021], "..."...)
	}
	return string(b)
}

// head looks an object up, retrying until deadline.
func (p *publisher) head(ctx context.Context, key string, deadline time.Time) (object, error) {
	var obj object
	err := p.retry(ctx, "head s3://"+p.cfg.Bucket+"/"+key, deadline, func(ctx context.Context) error {
		out, err := p.cfg.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key)})
		if isNotFound(err) {
			obj = object{}
			return nil
		}
		if err != nil {
			return err
		}
		obj = object{exists: true, sha: out.Metadata[MetaSHA256], size: aws.ToInt64(out.ContentLength)}
		return nil
	})
	return obj, err
}

func isNotFound(err error) bool {
	if err == nil {
		return false
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var nk *types.NoSuchKey
	if errors.As(err, &nk) {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// upload puts the first size bytes of f under key: one PutObject up to
// the part size, a multipart upload beyond.
func (p *publisher) upload(ctx context.Context, f fsys.File, size int64, key, sum string, meta map[string]string, deadline time.Time) error {
	metadata := map[string]string{MetaSHA256: sum}
	for k, v := range meta {
		metadata[k] = v
	}
	if size <= p.cfg.PartSize {
		return p.retry(ctx, "put s3://"+p.cfg.Bucket+"/"+key, deadline, func(ctx context.Context) error {
			body := newFileBody(f, 0, size)
			in := &s3.PutObjectInput{
				Bucket:        aws.String(p.cfg.Bucket),
				Key:           aws.String(key),
				Body:          body,
				ContentLength: aws.Int64(size),
				ContentType:   aws.String(contentType(key)),
				Metadata:      metadata,
			}
			if p.cfg.ServerSideEncryption != "" {
				in.ServerSideEncryption = types.ServerSideEncryption(p.cfg.ServerSideEncryption)
			}
			if p.cfg.KMSKeyID != "" {
				in.SSEKMSKeyId = aws.String(p.cfg.KMSKeyID)
			}
			if p.cfg.StorageClass != "" {
				in.StorageClass = types.StorageClass(p.cfg.StorageClass)
			}
			_, err := p.cfg.Client.PutObject(ctx, in)
			return body.check(err)
		})
	}
	return p.multipart(ctx, f, size, key, metadata, deadline)
}

// multipart uploads f in parts read straight from the file, a few at a
// time, so memory does not depend on the object's size. Each part is
// retried on its own; a failed upload is aborted.
func (p *publisher) multipart(ctx context.Context, f fsys.File, size int64, key string, metadata map[string]string, deadline time.Time) error {
	partSize := max(p.cfg.PartSize, (size+MaxParts-1)/MaxParts)
	n := int((size + partSize - 1) / partSize)
	where := "s3://" + p.cfg.Bucket + "/" + key
	var uploadID string
	err := p.retry(ctx, "start multipart upload "+where, deadline, func(ctx context.Context) error {
		in := &s3.CreateMultipartUploadInput{
			Bucket:            aws.String(p.cfg.Bucket),
			Key:               aws.String(key),
			ContentType:       aws.String(contentType(key)),
			Metadata:          metadata,
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		}
		if p.cfg.ServerSideEncryption != "" {
			in.ServerSideEncryption = types.ServerSideEncryption(p.cfg.ServerSideEncryption)
		}
		if p.cfg.KMSKeyID != "" {
			in.SSEKMSKeyId = aws.String(p.cfg.KMSKeyID)
		}
		if p.cfg.StorageClass != "" {
			in.StorageClass = types.StorageClass(p.cfg.StorageClass)
		}
		out, err := p.cfg.Client.CreateMultipartUpload(ctx, in)
		if err != nil {
			return err
		}
		uploadID = aws.ToString(out.UploadId)
		return nil
	})
	if err != nil {
		return err
	}
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.cfg.Concurrency)
	for i := range n {
		off := int64(i) * partSize
		length := min(partSize, size-off)
		g.Go(func() error {
			return p.retry(gctx, fmt.Sprintf("upload part %d of %d of %s", i+1, n, where), deadline, func(ctx context.Context) error {
				body := newFileBody(f, off, length)
				out, err := p.cfg.Client.UploadPart(ctx, &s3.UploadPartInput{
					Bucket:            aws.String(p.cfg.Bucket),
					Key:               aws.String(key),
					UploadId:          aws.String(uploadID),
					PartNumber:        aws.Int32(int32(i + 1)),
					Body:              body,
					ContentLength:     aws.Int64(length),
					ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
				})
				if err != nil {
					return body.check(err)
				}
				parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32: out.ChecksumCRC32}
				return nil
			})
		})
	}
	err = g.Wait()
	if err == nil {
		err = p.retry(ctx, "complete multipart upload "+where, deadline, func(ctx context.Context) error {
			_, err := p.cfg.Client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
				Bucket:          aws.String(p.cfg.Bucket),
				Key:             aws.String(key),
				UploadId:        aws.String(uploadID),
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			})
			return err
		})
	}
	if err != nil {
		// Parts of an aborted upload cost nothing; of one left behind
		// (the abort failing too) a bucket lifecycle rule cleans up.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if _, aerr := p.cfg.Client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(p.cfg.Bucket), Key: aws.String(key), UploadId: aws.String(uploadID),
		}); aerr != nil {
			p.cfg.Logger.Warn("s3: abort multipart upload", "key", key, "upload_id", uploadID, "err", aerr)
		}
		return err
	}
	return nil
}

func contentType(key string) string {
	switch {
	case strings.HasSuffix(key, ".parquet"):
		return "application/vnd.apache.parquet"
	case strings.HasSuffix(key, ".arrow"):
		return "application/vnd.apache.arrow.file"
	case strings.HasSuffix(key, ".json"):
		return "application/x-ndjson"
	case strings.HasSuffix(key, ".gz"):
		return "application/gzip"
	case strings.HasSuffix(key, ".zst"):
		return "application/zstd"
	}
	return "application/octet-stream"
}

// fileBody is a request body read from the sealed file. It remembers a
// read error, which is the staging disk's failure, not S3's: retrying the
// request cannot fix it.
type fileBody struct {
	*io.SectionReader
	err error
}

func newFileBody(f fsys.File, off, n int64) *fileBody {
	return &fileBody{SectionReader: io.NewSectionReader(f, off, n)}
}

func (b *fileBody) Read(p []byte) (int, error) {
	n, err := b.SectionReader.Read(p)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

func (b *fileBody) ReadAt(p []byte, off int64) (int, error) {
	n, err := b.SectionReader.ReadAt(p, off)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// check turns a failed request whose body could not be read into a
// localError.
func (b *fileBody) check(err error) error {
	if err != nil && b.err != nil {
		return &localError{b.err}
	}
	return err
}

// localError is a failure to read a sealed file from staging.
type localError struct{ err error }

func (e *localError) Error() string { return "read staged file: " + e.err.Error() }
func (e *localError) Unwrap() error { return e.err }

// permanent marks an error that retrying cannot fix.
type permanent struct{ err error }

func (e *permanent) Error() string { return e.err.Error() }
func (e *permanent) Unwrap() error { return e.err }

// retry calls f until it succeeds, fails for good, or deadline passes,
// sleeping with backoff between attempts.
func (p *publisher) retry(ctx context.Context, what string, deadline time.Time, f func(context.Context) error) error {
	backoff := minBackoff
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", what, ctx.Err())
		}
		var local *localError
		if errors.As(err, &local) {
			return fmt.Errorf("%s: %w", what, err)
		}
		if !retryable(err) {
			return &permanent{fmt.Errorf("%s: %w", what, err)}
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		if p.cfg.Now().Add(wait).After(deadline) {
			return fmt.Errorf("%s: still failing after %d attempts (retry duration %v): %w", what, attempt, p.cfg.Retry, err)
		}
		p.cfg.Logger.Warn("s3: retrying", "sink", p.cfg.Name, "op", what, "attempt", attempt, "wait", wait, "err", err)
		if err := p.cfg.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// retryable tells transient failures (the network, throttling, server
// errors) from those a retry cannot fix (access denied, no such bucket, a
// bad request).
func retryable(err error) bool {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		switch code := re.HTTPStatusCode(); {
		case code >= 500, code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
			return true
		case code >= 400:
			var ae smithy.APIError
			if errors.As(err, &ae) {
				switch ae.ErrorCode() {
				case "RequestTimeout", "RequestTimeTooSkewed", "SlowDown", "Throttling", "ThrottlingException", "ExpiredToken", "ExpiredTokenException":
					return true
				}
			}
			return false
		}
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidBucketName", "KMS.NotFoundException", "InvalidArgument", "EntityTooLarge":
			return false
		}
	}
	// Connection refused or reset, timeouts, credential providers that
	// could not be reached: the network, which comes back.
	return true
}
