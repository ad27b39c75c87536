package leases

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/sluice-dev/sluice/engine/awsconfig"
)

// Scheme is the scheme of a checkpoint store URL that names a lease table.
const Scheme = "dynamodb://"

// StoreURL is a parsed dynamodb://TABLE checkpoint store, with its
// optional query parameters:
//
//	dynamodb://TABLE?worker=ID&region=REGION&endpoint=URL&lease_duration=10s
type StoreURL struct {
	Table string
	// Worker is the worker id; "" means DefaultWorkerID.
	Worker   string
	Region   string // "": the AWS configuration chain
	Endpoint string // "": the real service
	// LeaseDuration is 0 for DefaultLeaseDuration.
	LeaseDuration time.Duration
}

// IsStoreURL reports whether a checkpoint store setting names a lease
// table rather than a directory.
func IsStoreURL(s string) bool { return strings.HasPrefix(s, Scheme) }

var tableName = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,255}$`)

// ParseStoreURL reads a dynamodb:// store setting.
func ParseStoreURL(s string) (StoreURL, error) {
	rest, ok := strings.CutPrefix(s, Scheme)
	if !ok {
		return StoreURL{}, fmt.Errorf("checkpoint store %q: a lease table is written dynamodb://TABLE", s)
	}
	table, query, _ := strings.Cut(rest, "?")
	if !tableName.MatchString(table) {
		return StoreURL{}, fmt.Errorf("checkpoint store %q: table name %q must be 3 to 255 letters, digits, '_', '-' or '.'", s, table)
	}
	u := StoreURL{Table: table}
	q, err := url.ParseQuery(query)
	if err != nil {
		return StoreURL{}, fmt.Errorf("checkpoint store %q: %w", s, err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return StoreURL{}, fmt.Errorf("checkpoint store %q: %s is given %d times", s, k, len(v))
		}
		switch k {
		case "worker":
			u.Worker = v[0]
			if u.Worker == "" || strings.ContainsAny(u.Worker, "\x00\n") {
				return StoreURL{}, fmt.Errorf("checkpoint store %q: worker must be a non-empty name", s)
			}
		case "region":
			u.Region = v[0]
		case "endpoint":
			e, err := url.Parse(v[0])
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return StoreURL{}, fmt.Errorf("checkpoint store %q: endpoint %q must be an http:// or https:// URL", s, v[0])
			}
			u.Endpoint = v[0]
		case "lease_duration":
			d, err := time.ParseDuration(v[0])
			if err != nil || d < time.Second {
				return StoreURL{}, fmt.Errorf("checkpoint store %q: lease_duration %q must be a duration of at least 1s, such as 10s", s, v[0])
			}
			u.LeaseDuration = d
		default:
			return StoreURL{}, fmt.Errorf("checkpoint store %q: unknown parameter %q (known: worker, region, endpoint, lease_duration)", s, k)
		}
	}
	return u, nil
}

// DefaultWorkerID is the worker id when the store URL names none: the
// SLUICE_WORKER_ID environment variable, else the host name. It must stay
// the same across restarts of a worker, and differ between the processes
// sharing a table.
func DefaultWorkerID() (string, error) {
	if id := os.Getenv("SLUICE_WORKER_ID"); id != "" {
		return id, nil
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "", fmt.Errorf("no worker id: set ?worker= in the dynamodb:// store or SLUICE_WORKER_ID (host name: %v)", err)
	}
	return h, nil
}

// NewClient makes a DynamoDB client with the options of o (package
// awsconfig: the standard chain, overridden where o says).
func NewClient(ctx context.Context, o awsconfig.Options) (*dynamodb.Client, error) {
	o.Who = "lease table"
	o.Service = "DynamoDB"
	o.RegionKey = "?region= in the dynamodb:// store (or region: in the kinesis source)"
	cfg, err := awsconfig.Load(ctx, o)
	if err != nil {
		return nil, err
	}
	return dynamodb.NewFromConfig(cfg), nil
}
