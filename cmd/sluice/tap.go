package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/sluice-dev/sluice/engine/server"
)

// cmdTap prints the records passing a step or sink of a running pipeline,
// read through the server of `sluice run` (/api/pipelines/NAME/tap/POINT).
func cmdTap(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("tap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	defServer := os.Getenv("SLUICE_SERVER")
	if defServer == "" {
		defServer = server.DefaultListen
	}
	addr := fs.String("server", defServer, "address of the running pipeline's server (server.listen or run --listen); env SLUICE_SERVER")
	pipeline := fs.String("pipeline", "", "pipeline name; needed when the server runs several")
	limit := fs.Int("limit", 0, "stop after this many records (0: until interrupted or the pipeline stops)")
	tokenFile := fs.String("token-file", "", "the server's token, when sluice run was given --token-file (the same `FILE`)")
	caCert := fs.String("ca-cert", "", "trust the server's HTTPS certificate through this PEM `FILE` (its own certificate, or the authority's that signed it), besides the system's")
	format := fs.String("format", "text", "output: text (time, point and fields, one record a line) or json (each record's fields as one JSON object a line)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: sluice tap [flags] STEP|SINK\n\nPrints live records at a point of a running pipeline: a step's output (STEP or step:NAME),\nwhat a sink is handed (SINK or sink:NAME), or source for the records as read. Records are\ncopies; a tap that cannot keep up drops records (and says how many) instead of slowing the\npipeline.\n\nflags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	if *format != "text" && *format != "json" {
		fmt.Fprintf(stderr, "sluice tap: --format %q: want text or json\n", *format)
		return exitUsage
	}
	if *limit < 0 || *limit > server.MaxTapLimit {
		fmt.Fprintf(stderr, "sluice tap: --limit %d: want 0 (no limit) to %d\n", *limit, server.MaxTapLimit)
		return exitUsage
	}
	base, err := serverURL(*addr)
	if err != nil {
		fmt.Fprintf(stderr, "sluice tap: --server %q: %v\n", *addr, err)
		return exitUsage
	}
	client, err := tapClient(*tokenFile, *caCert)
	if err != nil {
		fmt.Fprintf(stderr, "sluice tap: %v\n", err)
		return exitUsage
	}
	name := *pipeline
	if name == "" {
		names, code := pipelineNames(ctx, client, base, stderr)
		if code != exitOK {
			return code
		}
		if len(names) != 1 {
			fmt.Fprintf(stderr, "sluice tap: the server runs %d pipelines (%s); choose one with --pipeline\n", len(names), strings.Join(names, ", "))
			return exitUsage
		}
		name = names[0]
	}
	u := fmt.Sprintf("%s/api/pipelines/%s/tap/%s?limit=%d", base, url.PathEscape(name), url.PathEscape(fs.Arg(0)), *limit)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		fmt.Fprintf(stderr, "sluice tap: %v\n", err)
		return exitUsage
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return exitOK
		}
		fmt.Fprintf(stderr, "sluice tap: cannot reach a sluice server at %s (%v); is `sluice run` running with server.listen or --listen?\n", base, unwrapURLError(err))
		return exitRuntime
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "sluice tap: %s\n", apiMessage(resp))
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusBadRequest {
			return exitUsage
		}
		return exitRuntime
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	r := bufio.NewReaderSize(resp.Body, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			if code, done := printTapLine(out, stderr, line, *format); done {
				return code
			}
		}
		// Show what arrived before waiting for more.
		if r.Buffered() == 0 {
			if ferr := out.Flush(); ferr != nil {
				return exitRuntime
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return exitOK
			}
			fmt.Fprintf(stderr, "sluice tap: the server went away: %v\n", err)
			return exitRuntime
		}
	}
}

// tapLine is a line of the tap stream: a record, or a notice.
type tapLine struct {
	server.TapRecord
	Dropped int64  `json:"dropped"`
	End     string `json:"end"`
}

func printTapLine(out *bufio.Writer, stderr io.Writer, line []byte, format string) (code int, done bool) {
	var tl tapLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()
	if err := dec.Decode(&tl); err != nil {
		fmt.Fprintf(stderr, "sluice tap: unreadable line from the server: %v\n", err)
		return exitRuntime, true
	}
	switch {
	case tl.Dropped > 0:
		out.Flush()
		fmt.Fprintf(stderr, "sluice tap: %d records dropped: this tap could not keep up (the pipeline does not wait for it)\n", tl.Dropped)
		return 0, false
	case tl.End != "":
		out.Flush()
		fmt.Fprintf(stderr, "sluice tap: %s\n", tl.End)
		return exitOK, true
	}
	if format == "json" {
		var v any = tl.Fields
		switch {
		case tl.Fields == nil && tl.Data != nil:
			v = *tl.Data
		case tl.Fields == nil:
			v = map[string]string{"data_base64": tl.DataBase64}
		}
		b, err := json.Marshal(v)
		if err != nil {
			fmt.Fprintf(stderr, "sluice tap: %v\n", err)
			return exitRuntime, true
		}
		out.Write(b)
		out.WriteByte('\n')
		return 0, false
	}
	out.WriteString(tl.Time.Local().Format("15:04:05.000"))
	out.WriteByte(' ')
	out.WriteString(textValue(tl.Point))
	switch {
	case tl.Fields != nil:
		keys := make([]string, 0, len(tl.Fields))
		for k := range tl.Fields {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			out.WriteByte(' ')
			out.WriteString(k)
			out.WriteByte('=')
			out.WriteString(textValue(tl.Fields[k]))
		}
	case tl.Data != nil:
		out.WriteByte(' ')
		out.WriteString(strconv.Quote(*tl.Data))
	default:
		out.WriteString(" data_base64=" + textValue(tl.DataBase64))
	}
	out.WriteByte('\n')
	return 0, false
}

// textValue writes a field for the text format: strings bare when they are
// one plain word, quoted otherwise; other values as JSON.
func textValue(v any) string {
	if s, ok := v.(string); ok {
		if s != "" && !strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == '"' || r == '=' || !unicode.IsPrint(r) }) {
			return s
		}
		return strconv.Quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// tapClient is the HTTP client of sluice tap: it sends the token of
// tokenFile, and trusts the certificates of caFile too.
func tapClient(tokenFile, caFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-cert: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--ca-cert: %s holds no PEM certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	if tokenFile == "" {
		return &http.Client{Transport: tr}, nil
	}
	token, err := readToken(tokenFile)
	if err != nil {
		return nil, fmt.Errorf("--token-file: %w", err)
	}
	return &http.Client{Transport: bearer{token, tr}}, nil
}

// bearer sends a token with every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// serverURL turns host:port or a URL into the server's base URL.
func serverURL(addr string) (string, error) {
	if addr == "" {
		return "", errors.New("empty")
	}
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	u, err := url.Parse(addr)
	if err != nil || u.Host == "" {
		return "", errors.New("want host:port or http://host:port")
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func pipelineNames(ctx context.Context, client *http.Client, base string, stderr io.Writer) ([]string, int) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/api/pipelines", nil)
	resp, err := client.Do(req)
	if err != nil {
		fmt.Fprintf(stderr, "sluice tap: cannot reach a sluice server at %s (%v); is `sluice run` running with server.listen or --listen?\n", base, unwrapURLError(err))
		return nil, exitRuntime
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Fprintf(stderr, "sluice tap: %s\n", apiMessage(resp))
		return nil, exitRuntime
	}
	var doc struct {
		Pipelines []struct{ Name string } `json:"pipelines"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		fmt.Fprintf(stderr, "sluice tap: %s does not answer as a sluice server: %v\n", base, err)
		return nil, exitRuntime
	}
	var names []string
	for _, p := range doc.Pipelines {
		names = append(names, p.Name)
	}
	return names, exitOK
}

// apiMessage is the error an API answer carries, or its status.
func apiMessage(resp *http.Response) string {
	var e struct{ Error string }
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return resp.Status
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}
