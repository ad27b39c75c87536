package leases

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/sluice-dev/sluice/internal/wait"
)

// Client is the part of the DynamoDB API the lease table uses;
// *dynamodb.Client implements it.
type Client interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *dynamodb.UpdateItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, opts ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, opts ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
	DescribeTable(ctx context.Context, in *dynamodb.DescribeTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.DescribeTableOutput, error)
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, opts ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
}

// Attribute names. The lease columns are the Kinesis Client Library's, so
// that its tooling and dashboards read the table; checkpointOwner is the
// KCL's column for a lease in the middle of a graceful handoff.
const (
	attrKey            = "leaseKey"
	attrOwner          = "leaseOwner"
	attrCounter        = "leaseCounter"
	attrCheckpoint     = "checkpoint"
	attrSubSeq         = "checkpointSubSequenceNumber"
	attrOwnerSwitches  = "ownerSwitchesSinceCheckpoint"
	attrParents        = "parentShardId"
	attrCheckpointOwnr = "checkpointOwner"

	// Columns of sluice's own items.
	attrIncarnation = "incarnation"
	attrSeq         = "seq"
	attrState       = "state"
	attrPositions   = "positions"
	attrRevoked     = "revoked"
	attrPipeline    = "pipeline"
	attrStream      = "stream"
	attrHeartbeat   = "heartbeat"
)

// Keys of sluice's own items. Kinesis shard ids never contain a colon.
const (
	metaKey      = "sluice:meta"
	workerPrefix = "sluice:worker:"
)

func workerKey(id string) string { return workerPrefix + id }

// maxItemBytes is DynamoDB's item size limit; the worker item must fit.
const maxItemBytes = 400 << 10

// lease is one row of the table, as read.
type lease struct {
	key        string
	owner      string
	counter    int64
	checkpoint Position
	parents    []string
	ckptOwner  string
}

func decodeLease(item map[string]types.AttributeValue) (*lease, error) {
	l := &lease{key: str(item[attrKey]), owner: str(item[attrOwner]), ckptOwner: str(item[attrCheckpointOwnr])}
	var err error
	if l.counter, err = num(item[attrCounter]); err != nil {
		return nil, fmt.Errorf("lease %s: %s: %w", l.key, attrCounter, err)
	}
	sub, err := num(item[attrSubSeq])
	if err != nil {
		return nil, fmt.Errorf("lease %s: %s: %w", l.key, attrSubSeq, err)
	}
	if l.checkpoint, err = ParsePosition(str(item[attrCheckpoint])); err != nil {
		return nil, fmt.Errorf("lease %s: %w", l.key, err)
	}
	if l.checkpoint.IsSequence() {
		l.checkpoint.SubSequence = sub
	}
	if ss, ok := item[attrParents].(*types.AttributeValueMemberSS); ok {
		l.parents = ss.Value
	}
	return l, nil
}

// workerItem is a worker's part of the pipeline checkpoint: the state of
// its steps and sinks, and the positions of the shards it held when it
// saved them.
type workerItem struct {
	incarnation string
	seq         uint64
	state       string
	positions   map[string]Position
	revoked     []string
	heartbeat   int64
}

func decodeWorker(item map[string]types.AttributeValue) (*workerItem, error) {
	w := &workerItem{incarnation: str(item[attrIncarnation]), state: str(item[attrState]), positions: map[string]Position{}}
	seq, err := num(item[attrSeq])
	if err != nil || seq < 0 {
		return nil, fmt.Errorf("worker item %s: bad %s", str(item[attrKey]), attrSeq)
	}
	w.seq = uint64(seq)
	if w.heartbeat, err = num(item[attrHeartbeat]); err != nil {
		return nil, fmt.Errorf("worker item %s: bad %s", str(item[attrKey]), attrHeartbeat)
	}
	if m, ok := item[attrPositions].(*types.AttributeValueMemberM); ok {
		for shard, v := range m.Value {
			p, err := ParsePosition(str(v))
			if err != nil {
				return nil, fmt.Errorf("worker item %s: shard %s: %w", str(item[attrKey]), shard, err)
			}
			w.positions[shard] = p
		}
	}
	if ss, ok := item[attrRevoked].(*types.AttributeValueMemberSS); ok {
		w.revoked = ss.Value
	}
	return w, nil
}

func str(v types.AttributeValue) string {
	if s, ok := v.(*types.AttributeValueMemberS); ok {
		return s.Value
	}
	return ""
}

func num(v types.AttributeValue) (int64, error) {
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		return 0, nil
	}
	return strconv.ParseInt(n.Value, 10, 64)
}

func sAttr(s string) types.AttributeValue { return &types.AttributeValueMemberS{Value: s} }
func nAttr[T int64 | uint64 | int](n T) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: fmt.Sprint(n)}
}
func ssAttr(s ...string) types.AttributeValue { return &types.AttributeValueMemberSS{Value: s} }

func keyOf(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrKey: sAttr(k)}
}

// names maps #placeholders to every attribute name, so that no expression
// trips over a DynamoDB reserved word.
func names(attrs ...string) map[string]string {
	m := make(map[string]string, len(attrs))
	for _, a := range attrs {
		m["#"+a] = a
	}
	return m
}

// checkpointValues are the expression values that store p in the
// checkpoint columns.
func checkpointValues(p Position, vals map[string]types.AttributeValue) {
	vals[":ckpt"] = sAttr(p.Sequence)
	vals[":sub"] = nAttr(p.SubSequence)
}

func isConditionFailed(err error) bool {
	var cf *types.ConditionalCheckFailedException
	return errors.As(err, &cf)
}

// ensureTable creates the lease table when it does not exist, as the KCL
// does, with on-demand capacity, and waits until it is active.
func ensureTable(ctx context.Context, c Client, table string, now func() time.Time) error {
	out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
	var nf *types.ResourceNotFoundException
	switch {
	case errors.As(err, &nf):
		_, err = c.CreateTable(ctx, &dynamodb.CreateTableInput{
			TableName:            aws.String(table),
			AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(attrKey), AttributeType: types.ScalarAttributeTypeS}},
			KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(attrKey), KeyType: types.KeyTypeHash}},
			BillingMode:          types.BillingModePayPerRequest,
		})
		var inUse *types.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) { // another worker created it first
			return fmt.Errorf("create lease table %s: %w", table, err)
		}
	case err != nil:
		return fmt.Errorf("describe lease table %s: %w", table, err)
	default:
		if err := checkKeySchema(table, out.Table); err != nil {
			return err
		}
		if out.Table.TableStatus == types.TableStatusActive {
			return nil
		}
	}
	deadline := now().Add(5 * time.Minute)
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, 2*time.Second) {
		out, err := c.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(table)})
		if err == nil && out.Table.TableStatus == types.TableStatusActive {
			return checkKeySchema(table, out.Table)
		}
		if now().After(deadline) {
			return fmt.Errorf("lease table %s did not become active within 5 minutes", table)
		}
		if err := wait.Sleep(ctx, delay); err != nil {
			return err
		}
	}
}

func checkKeySchema(table string, d *types.TableDescription) error {
	if d == nil {
		return nil
	}
	if len(d.KeySchema) != 1 || aws.ToString(d.KeySchema[0].AttributeName) != attrKey {
		var ks []string
		for _, k := range d.KeySchema {
			ks = append(ks, aws.ToString(k.AttributeName))
		}
		return fmt.Errorf("table %s has key (%s), not a lease table keyed by %s: name another table", table, strings.Join(ks, ", "), attrKey)
	}
	return nil
}
