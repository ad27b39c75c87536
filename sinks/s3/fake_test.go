package s3_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// fakeObject is an object of the fake bucket.
type fakeObject struct {
	data         []byte
	meta         map[string]string
	sse          string
	kmsKey       string
	storageClass string
	parts        int // 0: a PutObject
}

// fakeS3 is an in-memory bucket with S3's semantics for the calls the
// sink makes: objects appear whole, multipart uploads only on completion.
// fail, when set, is asked before each call and may inject an error.
type fakeS3 struct {
	mu      sync.Mutex
	bucket  string
	objects map[string]*fakeObject
	uploads map[string]*fakeUpload
	nextID  int
	calls   map[string]int
	aborted int
	fail    func(op, key string) error
}

type fakeUpload struct {
	key   string
	meta  map[string]string
	parts map[int32][]byte
	sse   string
}

func newFakeS3(bucket string) *fakeS3 {
	return &fakeS3{bucket: bucket, objects: map[string]*fakeObject{}, uploads: map[string]*fakeUpload{}, calls: map[string]int{}}
}

// httpError makes the error the SDK returns for an HTTP status.
func httpError(status int, code string) error {
	return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
		Err:      fmt.Errorf("api error %s: injected", code),
	}}
}

var errConnRefused = errors.New("dial tcp 127.0.0.1:1: connect: connection refused")

func (f *fakeS3) check(op string, bucket, key *string) error {
	f.mu.Lock()
	f.calls[op]++
	fail := f.fail
	f.mu.Unlock()
	if aws.ToString(bucket) != f.bucket {
		return httpError(404, "NoSuchBucket")
	}
	if fail != nil {
		return fail(op, aws.ToString(key))
	}
	return nil
}

func (f *fakeS3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, _ ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	if err := f.check("head", in.Bucket, in.Key); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	o, ok := f.objects[aws.ToString(in.Key)]
	if !ok {
		return nil, &types.NotFound{}
	}
	return &s3.HeadObjectOutput{ContentLength: aws.Int64(int64(len(o.data))), Metadata: o.meta}, nil
}

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := f.check("put", in.Bucket, in.Key); err != nil {
		return nil, err
	}
	if _, ok := in.Body.(io.Seeker); !ok {
		return nil, errors.New("PutObject needs a seekable body over plain HTTP")
	}
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != aws.ToInt64(in.ContentLength) {
		return nil, fmt.Errorf("body of %d bytes, content length %d", len(data), aws.ToInt64(in.ContentLength))
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objects[aws.ToString(in.Key)] = &fakeObject{data: data, meta: in.Metadata, sse: string(in.ServerSideEncryption), kmsKey: aws.ToString(in.SSEKMSKeyId), storageClass: string(in.StorageClass)}
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if err := f.check("create", in.Bucket, in.Key); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	id := strconv.Itoa(f.nextID)
	f.uploads[id] = &fakeUpload{key: aws.ToString(in.Key), meta: in.Metadata, parts: map[int32][]byte{}, sse: string(in.ServerSideEncryption)}
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String(id)}, nil
}

func (f *fakeS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if err := f.check("part", in.Bucket, in.Key); err != nil {
		return nil, err
	}
	data, err := io.ReadAll(in.Body)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.uploads[aws.ToString(in.UploadId)]
	if u == nil {
		return nil, httpError(404, "NoSuchUpload")
	}
	u.parts[aws.ToInt32(in.PartNumber)] = data
	return &s3.UploadPartOutput{ETag: aws.String(fmt.Sprintf(`"%d"`, aws.ToInt32(in.PartNumber)))}, nil
}

func (f *fakeS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	if err := f.check("complete", in.Bucket, in.Key); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	u := f.uploads[aws.ToString(in.UploadId)]
	if u == nil {
		return nil, httpError(404, "NoSuchUpload")
	}
	var data []byte
	for i, p := range in.MultipartUpload.Parts {
		n := aws.ToInt32(p.PartNumber)
		if n != int32(i+1) {
			return nil, httpError(400, "InvalidPartOrder")
		}
		part, ok := u.parts[n]
		if !ok {
			return nil, httpError(400, "InvalidPart")
		}
		if i < len(in.MultipartUpload.Parts)-1 && len(part) < 5<<20 {
			return nil, httpError(400, "EntityTooSmall")
		}
		data = append(data, part...)
	}
	f.objects[u.key] = &fakeObject{data: data, meta: u.meta, sse: u.sse, parts: len(in.MultipartUpload.Parts)}
	delete(f.uploads, aws.ToString(in.UploadId))
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (f *fakeS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	if err := f.check("abort", in.Bucket, in.Key); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.uploads, aws.ToString(in.UploadId))
	f.aborted++
	return &s3.AbortMultipartUploadOutput{}, nil
}

// keys lists the objects' keys, sorted.
func (f *fakeS3) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.objects {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func (f *fakeS3) object(key string) *fakeObject {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.objects[key]
}

func (f *fakeS3) count(op string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[op]
}

// lines returns the JSON lines of every object whose key has prefix.
func (f *fakeS3) lines(prefix string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, o := range f.objects {
		if strings.HasPrefix(k, prefix) {
			for _, l := range bytes.Split(bytes.TrimSuffix(o.data, []byte("\n")), []byte("\n")) {
				out = append(out, string(l))
			}
		}
	}
	slices.Sort(out)
	return out
}
