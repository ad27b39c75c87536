package main

// The stream verbs: serve (the embedded stream store behind a
// Kinesis-compatible API), put (lines from stdin to a stream) and tail
// (records of a stream to stdout).

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sluice-dev/sluice/engine"
	"github.com/sluice-dev/sluice/engine/awsconfig"
	"github.com/sluice-dev/sluice/engine/hostcheck"
	"github.com/sluice-dev/sluice/engine/kpl"
	"github.com/sluice-dev/sluice/engine/producer"
	"github.com/sluice-dev/sluice/engine/servertls"
	"github.com/sluice-dev/sluice/engine/sources/generate"
	kinesisclient "github.com/sluice-dev/sluice/engine/sources/kinesis"
	"github.com/sluice-dev/sluice/engine/sources/local"
	"github.com/sluice-dev/sluice/engine/streamstore"
	"github.com/sluice-dev/sluice/engine/streamstore/autoscale"
	"github.com/sluice-dev/sluice/engine/streamstore/kinesisapi"
	"github.com/sluice-dev/sluice/operators"
	"github.com/sluice-dev/sluice/operators/decode"
)

// parseFlags parses flags that may come before or after the positional
// arguments, and returns the positional ones.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// multiFlag collects a repeated flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// newFlagSet makes the flag set of a verb, which prints its errors and its
// usage — the usage lines, then the flags — to stderr.
func newFlagSet(verb string, stderr io.Writer, usage ...string) *flag.FlagSet {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		for _, l := range usage {
			fmt.Fprintln(stderr, l)
		}
		fs.PrintDefaults()
	}
	return fs
}

func cmdServe(ctx context.Context, args []string, _ io.Reader, _, stderr io.Writer) int {
	fs := newFlagSet("serve", stderr,
		"usage: sluice serve [--listen 127.0.0.1:4567] [--dir ./data] [flags]",
		"\nServes the embedded stream store over the Kinesis Data Streams API.")
	listen := fs.String("listen", "127.0.0.1:4567", "address to listen on; loopback unless you name another interface")
	dir := fs.String("dir", "./data", "directory of the stream store")
	fsync := fs.Bool("fsync", true, "fsync every write batch before acknowledging it")
	limits := fs.Bool("limits", false, "enforce Kinesis's per-shard limits (1 MiB/s or 1,000 records/s in; 2 MiB/s and 5 reads/s out)")
	authFile := fs.String("auth", "any", "who may call: `FILE` of accepted access keys, one ACCESS_KEY:SECRET a line, whose SigV4 signatures are checked (a line of ACCESS_KEY alone accepts that key's any signature); any: any signature, for local use (calls that change the store must be signed, by any key); none: unsigned requests too")
	tlsCert := fs.String("tls-cert", "", "serve HTTPS with this PEM certificate `FILE` (intermediates after it); needs --tls-key")
	tlsKey := fs.String("tls-key", "", "the PEM private key `FILE` of --tls-cert")
	var allowedHosts multiFlag
	fs.Var(&allowedHosts, "allowed-hosts", "host `NAMES` (comma-separated, repeatable; .example.com for a domain, * for any) answered besides IP addresses and localhost; other Host headers are refused against DNS rebinding")
	maxBody := fs.Int64("max-body", kinesisapi.DefaultMaxBodyBytes, "largest request body in bytes")
	shardLimit := fs.Int("shard-limit", 500, "most open shards of all streams together")
	segBytes := fs.Int64("segment-bytes", 64<<20, "size at which a shard starts a new segment file")
	region := fs.String("region", "us-east-1", "region named in stream ARNs when a request's signature names none (a signed request is answered with its own region)")
	var creates multiFlag
	fs.Var(&creates, "create", "create a stream at start if it does not exist, as `NAME:SHARDS` (repeatable)")
	var scales multiFlag
	fs.Var(&scales, "autoscale", "scale a stream's shards with its put rate, as `stream=NAME,max=SHARDS[,min=1,up=80%,down=20%,window=1m,cooldown=2m]` (repeatable, one a stream)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "sluice serve: unexpected argument %q\n", pos[0])
		return exitUsage
	}
	var keys map[string]string
	unsigned := *authFile == "none"
	if *authFile != "any" && *authFile != "" && !unsigned {
		if keys, err = readKeys(*authFile); err != nil {
			fmt.Fprintf(stderr, "sluice serve: --auth: %v\n", err)
			return exitUsage
		}
	}
	tlsConfig, err := servertls.Load(*tlsCert, *tlsKey)
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitUsage
	}
	hosts, err := hostcheck.New(*listen, splitList(allowedHosts))
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: --allowed-hosts: %v\n", err)
		return exitUsage
	}
	type create struct {
		name   string
		shards int
	}
	var toCreate []create
	for _, c := range creates {
		name, n, ok := strings.Cut(c, ":")
		shards, err := strconv.Atoi(n)
		if !ok || err != nil || shards < 1 {
			fmt.Fprintf(stderr, "sluice serve: --create %q: want NAME:SHARDS, such as clicks:4\n", c)
			return exitUsage
		}
		toCreate = append(toCreate, create{name, shards})
	}
	var specs []autoscale.Spec
	for _, a := range scales {
		sp, err := autoscale.ParseSpec(a)
		if err != nil {
			fmt.Fprintf(stderr, "sluice serve: --autoscale %q: %v\n", a, err)
			return exitUsage
		}
		if sp.Max > *shardLimit {
			fmt.Fprintf(stderr, "sluice serve: --autoscale %q: max=%d is above --shard-limit %d\n", a, sp.Max, *shardLimit)
			return exitUsage
		}
		specs = append(specs, sp)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	st, err := streamstore.Open(*dir, streamstore.Options{NoSync: !*fsync, SegmentBytes: *segBytes, MaxOpenShards: *shardLimit, Region: *region, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitRuntime
	}
	defer st.Close()
	for _, c := range toCreate {
		if err := st.CreateStream(c.name, c.shards, ""); err != nil && streamstore.KindOf(err) != streamstore.KindInUse {
			fmt.Fprintf(stderr, "sluice serve: --create %s: %v\n", c.name, err)
			return exitUsage
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, err := kinesisapi.New(kinesisapi.Config{Store: st, Keys: keys, AllowUnsigned: unsigned, Hosts: hosts, Limits: *limits, MaxBodyBytes: *maxBody, Registry: reg, Logger: log})
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitRuntime
	}
	var scaler *autoscale.Autoscaler
	if len(specs) > 0 {
		if scaler, err = autoscale.New(autoscale.Config{Specs: specs, Target: h, Logger: log}); err != nil {
			fmt.Fprintf(stderr, "sluice serve: --autoscale: %v\n", err)
			return exitUsage
		}
		reg.MustRegister(scaler)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitRuntime
	}
	addr := ln.Addr().(*net.TCPAddr)
	if !addr.IP.IsLoopback() && keys == nil {
		log.Warn("listening beyond loopback without --auth FILE: anyone who can reach this address can read and write every stream", "addr", addr.String())
	}
	logAuth(log, keys, unsigned)
	ln = servertls.Listen(ln, tlsConfig)
	scheme := servertls.Scheme(tlsConfig)
	fmt.Fprintf(stderr, "sluice serve: Kinesis API on %s://%s, store %s; metrics on %s://%s/metrics\n", scheme, addr, *dir, scheme, addr)
	stopScaling := func() {}
	if scaler != nil {
		sctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			scaler.Run(sctx)
		}()
		stopScaling = func() { stop(); <-done }
		for _, sp := range specs {
			log.Info("autoscale", "spec", sp.String())
		}
	}
	err = h.Serve(ctx, ln)
	// Stop scaling before the store closes.
	stopScaling()
	if err != nil {
		fmt.Fprintf(stderr, "sluice serve: %v\n", err)
		return exitRuntime
	}
	if err := st.Close(); err != nil {
		fmt.Fprintf(stderr, "sluice serve: close store: %v\n", err)
		return exitRuntime
	}
	return exitOK
}

// splitList splits repeated, comma-separated flag values.
func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// logAuth says at start who may call the server, so that a mode meant
// for local use is never taken for a checked one.
func logAuth(log *slog.Logger, keys map[string]string, unsigned bool) {
	switch {
	case unsigned:
		log.Warn("auth: none (--auth none): unsigned requests are accepted, for local use only; anyone who reaches the address can change every stream")
	case keys == nil:
		log.Info("auth: any signature is accepted, for local use (--auth any, the default): calls that change the store must be signed, by any key; to check signatures, start with --auth FILE of ACCESS_KEY:SECRET lines")
	default:
		checked := 0
		for _, secret := range keys {
			if secret != "" {
				checked++
			}
		}
		log.Info("auth: only the access keys of --auth are accepted, their SigV4 signatures checked", "keys", len(keys), "checked", checked, "by_name_only", len(keys)-checked)
	}
}

// readKeys reads an --auth file (see parseKeys).
func readKeys(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKeys(path, b)
}

// parseKeys reads the lines of an --auth file, named path in errors:
// ACCESS_KEY[:SECRET] per line, blank lines and # comments ignored.
func parseKeys(path string, b []byte) (map[string]string, error) {
	keys := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, secret, _ := strings.Cut(line, ":")
		if k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: want ACCESS_KEY or ACCESS_KEY:SECRET", path, i+1)
		}
		keys[k] = secret
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no access key", path)
	}
	return keys, nil
}

// putter writes batches of records to a stream.
type putter interface {
	put(ctx context.Context, entries []streamstore.PutEntry) error
}

// storePutter writes to the store directly.
type storePutter struct {
	st   *streamstore.Store
	name string
}

func (p storePutter) put(ctx context.Context, entries []streamstore.PutEntry) error {
	res, err := p.st.Put(ctx, p.name, entries, nil)
	if err != nil {
		return err
	}
	for i, r := range res {
		if r.Err != nil {
			return fmt.Errorf("record %d: %w", i, r.Err)
		}
	}
	return nil
}

// apiPutter writes through a Kinesis API with a producer, which retries
// the records a call rejects and keeps their order per partition key.
type apiPutter struct{ p *producer.Producer }

func (p apiPutter) put(ctx context.Context, entries []streamstore.PutEntry) error {
	return p.p.Put(ctx, entries)
}

// apiClient is a Kinesis client for --endpoint, its configuration loaded
// as every client's (package awsconfig): on loopback, placeholder
// credentials stand in for missing ones, since sluice serve accepts any
// signature unless it runs with --auth FILE.
func apiClient(ctx context.Context, endpoint, region, profile string, log *slog.Logger) (*kinesis.Client, error) {
	return kinesisclient.NewClient(ctx, awsconfig.Options{Who: "--endpoint", RegionKey: "--region", Endpoint: endpoint, Region: region, Profile: profile, Logger: log})
}

// createStream creates a stream through the API unless it exists, and
// waits for it to be ACTIVE.
func createStream(ctx context.Context, c *kinesis.Client, name string, shards int) error {
	_, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String(name), ShardCount: aws.Int32(int32(shards))})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return err
	}
	w := kinesis.NewStreamExistsWaiter(c, func(o *kinesis.StreamExistsWaiterOptions) {
		o.MinDelay, o.MaxDelay = 50*time.Millisecond, time.Second
	})
	return w.Wait(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String(name)}, 2*time.Minute)
}

// generatedLines makes a generator's records readable as lines, one JSON
// object each, until it ends or ctx is done.
func generatedLines(ctx context.Context, gen *generate.Source) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 64<<10)
		err := gen.Read(ctx, nil, func(_ context.Context, b *engine.Batch) error {
			for _, r := range b.Records {
				w.Write(r.Data)
				if err := w.WriteByte('\n'); err != nil {
					return err
				}
			}
			return w.Flush()
		})
		if err == nil || ctx.Err() != nil {
			err = w.Flush()
		}
		pw.CloseWithError(err)
	}()
	return pr
}

func cmdPut(ctx context.Context, args []string, stdin io.Reader, _, stderr io.Writer) int {
	fs := newFlagSet("put", stderr,
		"usage: sluice put [flags] STREAM < lines\n       sluice put --generate clickstream [--count N] [flags] STREAM",
		"\nWrites each line of standard input to STREAM as one record (blank lines are skipped),\nor synthetic records of a generator profile (the generate source's) with --generate.")
	dir := fs.String("dir", "./data", "directory of the stream store (ignored with --endpoint)")
	endpoint := fs.String("endpoint", "", "put through a Kinesis API at this URL instead, such as a running sluice serve")
	region := fs.String("region", "us-east-1", "region for --endpoint")
	profile := fs.String("profile", "", "AWS profile for --endpoint (default: the standard chain; on loopback, placeholder credentials when none is set)")
	key := fs.String("key", "", "partition key of every record (default: a random key per line)")
	keyExpr := fs.String("key-expr", "", "expression giving a line's partition key; it sees the fields of a JSON line, `line` and `n` (the line number)")
	create := fs.Int("create", 0, "create the stream with this many shards if it does not exist")
	genProfile := fs.String("generate", "", "write synthetic records of this `profile` (clickstream) instead of reading standard input")
	count := fs.Int64("count", 1000, "with --generate: how many records (0: until interrupted)")
	rate := fs.Float64("rate", 0, "with --generate: records per second (0: as fast as the stream takes them)")
	seed := fs.Int64("seed", 1, "with --generate: the sequence to make")
	batch := fs.Int("batch", 500, "most records per write")
	linger := fs.Duration("linger", 100*time.Millisecond, "longest a line waits for more to fill a write")
	quiet := fs.Bool("quiet", false, "print no summary")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	name := pos[0]
	if err := streamstore.ValidateStreamName(name); err != nil {
		fmt.Fprintf(stderr, "sluice put: %v\n", err)
		return exitUsage
	}
	if *key != "" && *keyExpr != "" {
		fmt.Fprintln(stderr, "sluice put: give --key or --key-expr, not both")
		return exitUsage
	}
	if *batch < 1 || *batch > 500 {
		fmt.Fprintln(stderr, "sluice put: --batch must be between 1 and 500")
		return exitUsage
	}
	if *create < 0 {
		fmt.Fprintln(stderr, "sluice put: --create takes a number of shards, at least 1")
		return exitUsage
	}
	if *genProfile != "" {
		gen, err := generate.New(generate.Config{Profile: *genProfile, Count: *count, Rate: *rate, Seed: *seed})
		if err != nil {
			fmt.Fprintf(stderr, "sluice put: --generate: %v\n", err)
			return exitUsage
		}
		if *key == "" && *keyExpr == "" {
			*keyExpr = "user" // the generated records' own partition key
		}
		stdin = generatedLines(ctx, gen)
	} else {
		var stray []string
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "count" || f.Name == "rate" || f.Name == "seed" {
				stray = append(stray, "--"+f.Name)
			}
		})
		if len(stray) > 0 {
			fmt.Fprintf(stderr, "sluice put: %s goes with --generate\n", strings.Join(stray, ", "))
			return exitUsage
		}
	}
	keyOf, err := keyFunc(*key, *keyExpr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice put: --key-expr: %v\n", err)
		return exitUsage
	}

	var p putter
	if *endpoint != "" {
		// put's output is its summary; placeholder credentials are what a
		// local sluice serve expects, no news worth a line.
		log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		c, err := apiClient(ctx, *endpoint, *region, *profile, log)
		if err != nil {
			fmt.Fprintf(stderr, "sluice put: %v\n", err)
			return exitRuntime
		}
		if *create > 0 {
			if err := createStream(ctx, c, name, *create); err != nil {
				fmt.Fprintf(stderr, "sluice put: --create: %v\n", err)
				return exitRuntime
			}
		}
		pr, err := producer.New(producer.Config{Stream: name, Client: c})
		if err != nil {
			fmt.Fprintf(stderr, "sluice put: %v\n", err)
			return exitRuntime
		}
		p = apiPutter{pr}
	} else {
		st, err := streamstore.Open(*dir, streamstore.Options{})
		if err != nil {
			fmt.Fprintf(stderr, "sluice put: %v (to write while sluice serve runs, use --endpoint http://ADDRESS)\n", err)
			return exitRuntime
		}
		defer st.Close()
		if _, err := st.Describe(name); streamstore.KindOf(err) == streamstore.KindNotFound {
			if *create == 0 {
				fmt.Fprintf(stderr, "sluice put: stream %s does not exist in %s; create it with --create SHARDS\n", name, *dir)
				return exitRuntime
			}
			if err := st.CreateStream(name, *create, ""); err != nil {
				fmt.Fprintf(stderr, "sluice put: %v\n", err)
				return exitRuntime
			}
		}
		p = storePutter{st, name}
	}

	// Lines are read in their own goroutine so that a slow producer's
	// lines are written after --linger instead of waiting for a full batch.
	type line struct {
		text []byte
		n    int
		err  error
	}
	lines := make(chan line, *batch)
	go func() {
		defer close(lines)
		r := bufio.NewReaderSize(stdin, 64<<10)
		n := 0
		for {
			b, err := readLine(r, streamstore.MaxRecordBytes-streamstore.MaxPartitionKeyLen*4)
			if len(b) > 0 || (err != nil && err != io.EOF) {
				n++
				select {
				case lines <- line{b, n, err}:
				case <-ctx.Done():
					return
				}
			} else if err == nil {
				n++ // a blank line
			}
			if err == io.EOF || (err != nil && !errors.Is(err, errLineTooLong)) {
				return
			}
		}
	}()

	var pending []streamstore.PutEntry
	written, badKeys := 0, 0
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		if err := p.put(ctx, pending); err != nil {
			return err
		}
		written += len(pending)
		pending = pending[:0]
		return nil
	}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	status := exitOK
loop:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break loop
			}
			if l.err != nil {
				fmt.Fprintf(stderr, "sluice put: line %d: %v; it was not written\n", l.n, l.err)
				status = exitRuntime
				if !errors.Is(l.err, errLineTooLong) {
					break loop
				}
				continue
			}
			k, err := keyOf(l.text, l.n)
			if err != nil {
				badKeys++
				fmt.Fprintf(stderr, "sluice put: line %d: partition key: %v; using a random key\n", l.n, err)
				k = randomKey()
			}
			pending = append(pending, streamstore.PutEntry{PartitionKey: k, Data: l.text})
			if len(pending) == 1 {
				timer.Reset(*linger)
			}
			if len(pending) >= *batch {
				timer.Stop()
				if err := flush(); err != nil {
					fmt.Fprintf(stderr, "sluice put: %v\n", err)
					return exitRuntime
				}
			}
		case <-timer.C:
			if err := flush(); err != nil {
				fmt.Fprintf(stderr, "sluice put: %v\n", err)
				return exitRuntime
			}
		case <-ctx.Done():
			break loop
		}
	}
	if err := flush(); err != nil {
		fmt.Fprintf(stderr, "sluice put: %v\n", err)
		return exitRuntime
	}
	if !*quiet {
		fmt.Fprintf(stderr, "sluice put: %d records written to %s\n", written, name)
	}
	return status
}

var errLineTooLong = errors.New("line is longer than a record may be (1 MiB with its partition key)")

// readLine reads one line without its end of line. A line longer than max
// is skipped to its end and reported with errLineTooLong.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
	var out []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			if len(out)+len(chunk) > max+2 {
				tooLong, out = true, nil
			} else {
				out = append(out, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if tooLong {
			if err == nil || err == io.EOF {
				return nil, errLineTooLong
			}
			return nil, err
		}
		out = trimEOL(out)
		if len(out) > max {
			return nil, errLineTooLong
		}
		return out, err
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

func randomKey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// keyFunc returns how a line's partition key is chosen. --key-expr is an
// expression of the pipeline file's dialect (package operators) that sees
// the fields of a JSON line, decoded as the json decoder does, and line
// and n.
func keyFunc(key, src string) (func(line []byte, n int) (string, error), error) {
	switch {
	case key != "":
		if err := streamstore.ValidateEntry(&streamstore.PutEntry{PartitionKey: key}); err != nil {
			return nil, err
		}
		return func([]byte, int) (string, error) { return key, nil }, nil
	case src == "":
		return func([]byte, int) (string, error) { return randomKey(), nil }, nil
	}
	e, err := operators.Compile(src, operators.Schema{}, operators.Any)
	if err != nil {
		return nil, err
	}
	dec, err := decode.New(decode.Config{Format: "json", Fields: e.Fields()})
	if err != nil {
		return nil, err
	}
	return func(line []byte, n int) (string, error) {
		// A line that is not a JSON object has no fields, only line and n.
		b := engine.Batch{Records: []engine.Record{{Data: line}}}
		if _, err := dec.Process(context.Background(), &b); err != nil {
			return "", err
		}
		fields := map[string]any{}
		if len(b.Records) == 1 && b.Records[0].Fields != nil {
			fields = b.Records[0].Fields
		}
		fields["line"], fields["n"] = string(line), int64(n)
		v, err := e.Eval(&engine.Record{Data: line, Fields: fields})
		if err != nil {
			return "", err
		}
		if v == nil {
			return "", errors.New("the expression gave nil")
		}
		k := fmt.Sprint(v)
		if err := streamstore.ValidateEntry(&streamstore.PutEntry{PartitionKey: k}); err != nil {
			return "", err
		}
		return k, nil
	}, nil
}

func cmdTail(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("tail", stderr,
		"usage: sluice tail [flags] STREAM",
		"\nPrints the records of STREAM, read from the store directory (also while sluice serve runs).")
	dir := fs.String("dir", "./data", "directory of the stream store")
	from := fs.String("from", "trim_horizon", "where to start: trim_horizon, latest or at_timestamp")
	ts := fs.String("timestamp", "", "arrival time to start at with --from at_timestamp (RFC 3339)")
	follow := fs.Bool("f", false, "keep printing new records until interrupted")
	format := fs.String("format", "data", "data: each record's bytes and a newline; json: a JSON object per record with its metadata")
	limit := fs.Int("n", 0, "stop after this many records (0: no limit)")
	raw := fs.Bool("raw", false, "print records as stored: a KPL aggregate as its bytes, not as the user records it holds")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return exitUsage
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitUsage
	}
	if *format != "data" && *format != "json" {
		fmt.Fprintf(stderr, "sluice tail: --format %q: want data or json\n", *format)
		return exitUsage
	}
	cfg := local.Config{Dir: *dir, Stream: pos[0], Start: *from, StopAtEnd: !*follow, PollInterval: 100 * time.Millisecond}
	if *ts != "" {
		t, err := time.Parse(time.RFC3339Nano, *ts)
		if err != nil {
			fmt.Fprintf(stderr, "sluice tail: --timestamp: %v\n", err)
			return exitUsage
		}
		cfg.StartTimestamp = t
	}
	src, err := local.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "sluice tail: %v\n", err)
		return exitUsage
	}
	w := bufio.NewWriterSize(stdout, 64<<10)
	defer w.Flush()
	printed := 0
	errDone := errors.New("enough records")
	show := func(r *engine.Record, data []byte, partitionKey string, sub int) error {
		if *format == "json" {
			out := map[string]any{
				"shard": r.Meta.ShardID, "sequence_number": r.Meta.SequenceNumber,
				"partition_key": partitionKey, "arrival_time": r.Meta.ArrivalTime.UTC().Format(time.RFC3339Nano),
			}
			if sub >= 0 {
				out["sub_sequence_number"] = sub
			}
			if utf8.Valid(data) {
				out["data"] = string(data)
			} else {
				out["data_base64"] = base64.StdEncoding.EncodeToString(data)
			}
			b, _ := json.Marshal(out)
			w.Write(append(b, '\n'))
		} else {
			w.Write(data)
			w.WriteByte('\n')
		}
		printed++
		if *limit > 0 && printed >= *limit {
			return errDone
		}
		return nil
	}
	emit := func(_ context.Context, b *engine.Batch) error {
		for i := range b.Records {
			r := &b.Records[i]
			// A KPL aggregate is shown as its user records, as a
			// pipeline reads it; one that fails its checks is a plain
			// record, as the Kinesis Client Library treats it.
			if !*raw && kpl.IsAggregated(r.Data) {
				if users, err := kpl.Deaggregate(r.Data); err == nil {
					for j, u := range users {
						if err := show(r, u.Data, u.PartitionKey, j); err != nil {
							return err
						}
					}
					continue
				}
			}
			if err := show(r, r.Data, r.Meta.PartitionKey, -1); err != nil {
				return err
			}
		}
		return w.Flush()
	}
	err = src.Read(ctx, nil, emit)
	if err != nil && !errors.Is(err, errDone) && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
		w.Flush()
		fmt.Fprintf(stderr, "sluice tail: %v\n", err)
		return exitRuntime
	}
	return exitOK
}
