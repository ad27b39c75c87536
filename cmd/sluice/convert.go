package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/sluice-dev/sluice/pipelines"
	"github.com/sluice-dev/sluice/pipelines/convert"
)

// cmdConvert turns a Firehose delivery stream description or a Kinesis
// Data Analytics application's SQL into a pipeline file.
func cmdConvert(_ context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("convert", stderr,
		"usage: sluice convert [flags] FILE",
		"",
		"Writes the pipeline equivalent to FILE: a Firehose delivery stream description (what",
		"`aws firehose describe-delivery-stream` prints) or the SQL of a Kinesis Data Analytics",
		"application. What has no exact equivalent is a # comment in the file. FILE - reads stdin.",
		"docs/convert.md maps every setting.",
		"",
		"flags:")
	out := fs.String("o", "", "write the pipeline to this file (default: standard output)")
	from := fs.String("from", "auto", "what FILE is: firehose, kda, or auto (JSON is a description, anything else SQL)")
	name := fs.String("name", "", "the pipeline's name (default: the delivery stream's, or kda-app)")
	glue := fs.String("glue-table", "", "firehose: a file of what `aws glue get-table` prints for the table a record format conversion names; its columns become the schema")
	stream := fs.String("stream", "", "kda: the Kinesis stream the application read")
	region := fs.String("region", "", "kda: the stream's region")
	rowtime := fs.String("rowtime", "", "kda: an expression ROWTIME stands for, such as a field of event time (default: the arrival time, as KDA's ROWTIME)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return exitUsage
	}
	path := fs.Arg(0)
	data, err := readLimited(path, stdin, convert.MaxInputSize)
	if err != nil {
		fmt.Fprintf(stderr, "sluice convert: %v\n", err)
		return exitUsage
	}
	kind := *from
	if kind == "auto" {
		kind = "kda"
		if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
			kind = "firehose"
		}
	}
	var res *convert.Result
	switch kind {
	case "firehose":
		opts := convert.FirehoseOptions{Name: *name}
		if *glue != "" {
			if opts.GlueTable, err = readLimited(*glue, nil, convert.MaxInputSize); err != nil {
				fmt.Fprintf(stderr, "sluice convert: --glue-table: %v\n", err)
				return exitUsage
			}
		}
		res, err = convert.Firehose(data, opts)
	case "kda":
		res, err = convert.KDA(data, convert.KDAOptions{Name: *name, Stream: *stream, Region: *region, Rowtime: *rowtime})
	default:
		fmt.Fprintf(stderr, "sluice convert: --from %q: use firehose, kda or auto\n", *from)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "sluice convert: %s: %v\n", path, err)
		return exitUsage
	}
	// The file is checked as `sluice validate` would, where it will live,
	// so that what is written always loads.
	dir, file := ".", "<stdout>"
	if *out != "" {
		dir, file = filepath.Dir(*out), *out
	}
	if _, err := pipelines.Parse(file, dir, res.YAML, func(string) (string, bool) { return "", false }); err != nil {
		fmt.Fprintf(stderr, "sluice convert: %s: the converted pipeline does not validate, which is a bug of sluice convert:\n%v\n", path, err)
		return exitRuntime
	}
	if *out == "" {
		if _, err := stdout.Write(res.YAML); err != nil {
			fmt.Fprintf(stderr, "sluice convert: %v\n", err)
			return exitRuntime
		}
	} else if err := writeFileAtomic(*out, res.YAML, 0o644); err != nil {
		fmt.Fprintf(stderr, "sluice convert: %v\n", err)
		return exitRuntime
	}
	if n := len(res.Notes); n > 0 {
		fmt.Fprintf(stderr, "sluice convert: %s: %d %s not carried over exactly; each is a # comment in the pipeline file\n", path, n, map[bool]string{true: "setting", false: "settings"}[n == 1])
	}
	return exitOK
}

// readLimited reads path (- for r) up to limit bytes.
func readLimited(path string, r io.Reader, limit int64) ([]byte, error) {
	if path == "-" && r != nil {
		data, err := io.ReadAll(io.LimitReader(r, limit+1))
		if err == nil && int64(len(data)) > limit {
			err = fmt.Errorf("standard input holds more than %d bytes", limit)
		}
		return data, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New(strings.TrimSpace(path + " is empty"))
	}
	return data, nil
}
