package encode

import (
	"cmp"
	"fmt"
	"io"
	"strings"

	"github.com/sluice-dev/sluice/engine"
)

// Format is an output format as buffering sinks use it: JSONLines,
// Parquet or Arrow.
type Format interface {
	// Ext is the output's file name extension.
	Ext() string
	// Encode appends a record as the format stages it; an error says why
	// the record does not fit the format.
	Encode(dst []byte, r *engine.Record) ([]byte, error)
	// Seal writes an output from its staged records.
	Seal(dst io.Writer, spool io.Reader) error
	// SpoolFormat names the staged encoding ("" for JSON lines).
	SpoolFormat() string
}

// Builder builds one output from its records as they are staged, so
// that sealing need not read them back: Add takes each record as Encode
// appended it. A builder holds derived state only: the staged records
// (the spool) stay the durable record of the output, and a builder lost
// in a crash is rebuilt by Load from them.
type Builder interface {
	// Add takes the next record, as Encode appended it.
	Add(line []byte) error
	// Load adds the records of spool, as staged one after the other.
	Load(spool io.Reader) error
	// Finish writes the output. spool, at its start, holds every record
	// added, for a builder that needs a second pass.
	Finish(dst io.Writer, spool io.Reader) error
	// Size is about the memory the builder holds.
	Size() int64
}

// Building is a Format that builds its outputs as records arrive
// (Parquet).
type Building interface {
	NewBuilder() (Builder, error)
}

// FormatOptions choose and configure a Format, as a sink's YAML does.
type FormatOptions struct {
	// Format is "json" (the default), "parquet" or "arrow".
	Format string
	// Compression is none, gzip, zstd or snappy; empty means none for
	// JSON and snappy for Parquet (Firehose's default for Parquet). Arrow
	// takes none (the default), lz4 or zstd.
	Compression string
	// Schema configures Parquet and Arrow; RowGroupBytes, PageBytes and
	// NoDictionary configure Parquet (see ParquetOptions). A schema is
	// refused for JSON.
	Schema        *Type
	RowGroupBytes int64
	PageBytes     int
	NoDictionary  bool
	// Rows, when set, makes each record a row first: the values of its
	// columns, its strings checked for UTF-8 (table sinks).
	Rows *Rows
}

// Formats returns the record format and the error output's format that
// o describes. Its error is an engine.ConfigErrors that names the sink's
// key at fault, compression or format, as a pipeline file does.
func (o FormatOptions) Formats() (Format, JSONLines, error) {
	var errs engine.ConfigErrors
	if o.isArrow() {
		if _, err := ParseArrowCompression(o.Compression); err != nil {
			errs.Add("compression", "%v", err)
			return nil, JSONLines{}, errs
		}
	} else if strings.EqualFold(o.Compression, "lz4") {
		errs.Add("compression", "lz4 compresses the buffers of Arrow outputs (format: arrow); %s outputs take none, gzip, zstd or snappy", cmp.Or(o.Format, "json"))
		return nil, JSONLines{}, errs
	} else if _, err := ParseCompression(o.Compression); err != nil {
		errs.Add("compression", "%v", err)
		return nil, JSONLines{}, errs
	}
	format, err := NewFormat(o)
	if err != nil {
		errs.Add("format", "%v", err)
		return nil, JSONLines{}, errs
	}
	format = o.Rows.wrap(format)
	errFormat, err := o.ErrorFormat()
	if err != nil {
		errs.Add("compression", "%v", err)
		return nil, JSONLines{}, errs
	}
	return format, errFormat, nil
}

// NewFormat returns the format o describes, or an error that says what to
// change.
func NewFormat(o FormatOptions) (Format, error) {
	if o.isArrow() {
		comp, err := ParseArrowCompression(o.Compression)
		if err != nil {
			return nil, err
		}
		if o.RowGroupBytes != 0 || o.PageBytes != 0 || o.NoDictionary {
			return nil, fmt.Errorf("row groups, pages and dictionaries apply to format parquet")
		}
		return NewArrow(ArrowOptions{Schema: o.Schema, Compression: comp})
	}
	comp, err := ParseCompression(o.Compression)
	if err != nil {
		return nil, err
	}
	switch strings.ToLower(o.Format) {
	case "", "json":
		if o.Schema != nil {
			return nil, fmt.Errorf("a schema applies to format parquet or arrow; JSON lines keep every field as it is")
		}
		if o.RowGroupBytes != 0 || o.PageBytes != 0 {
			return nil, fmt.Errorf("row group and page sizes apply to format parquet")
		}
		return &JSONLines{Compression: comp}, nil
	case "parquet":
		if o.Compression == "" {
			comp = Snappy
		}
		return NewParquet(ParquetOptions{Schema: o.Schema, Compression: comp, RowGroupBytes: o.RowGroupBytes, PageBytes: o.PageBytes, NoDictionary: o.NoDictionary})
	}
	return nil, fmt.Errorf("unknown format %q; use json, parquet or arrow", o.Format)
}

func (o FormatOptions) isArrow() bool { return strings.EqualFold(o.Format, "arrow") }

// ErrorFormat is the format of the error output of a sink configured by
// o: JSON lines, compressed as the sink's records are (for Arrow: zstd
// when its buffers are, else none, as JSON lines have no lz4).
func (o FormatOptions) ErrorFormat() (JSONLines, error) {
	if o.isArrow() {
		comp, err := ParseArrowCompression(o.Compression)
		if err != nil {
			return JSONLines{}, err
		}
		if comp == ArrowZstd {
			return JSONLines{Compression: Zstd}, nil
		}
		return JSONLines{Compression: None}, nil
	}
	comp, err := ParseCompression(o.Compression)
	if err != nil {
		return JSONLines{}, err
	}
	if o.Compression == "" && strings.EqualFold(o.Format, "parquet") {
		comp = Snappy
	}
	return JSONLines{Compression: comp}, nil
}

// FormatForSpool returns the format that seals spools staged in
// spoolFormat, taking the options of o that the spool does not fix (the
// compression, row group and page sizes). It lets a run seal what a run
// with another format or schema staged before a crash.
func (o FormatOptions) FormatForSpool(spoolFormat string) (Format, error) {
	if strings.HasPrefix(spoolFormat, "arrow:") {
		// This run's compression when it has one Arrow takes.
		comp, _ := ParseArrowCompression(o.Compression)
		a, _, err := ArrowFromSpoolFormat(spoolFormat, ArrowOptions{Compression: comp})
		if err != nil {
			return nil, err
		}
		return a, nil
	}
	if o.isArrow() && !strings.EqualFold(o.Compression, "zstd") {
		// Arrow's lz4 is not one of JSON lines' or Parquet's: their
		// defaults then.
		o.Compression = ""
	}
	comp, err := ParseCompression(o.Compression)
	if err != nil {
		return nil, err
	}
	if spoolFormat == "" {
		if o.Compression == "" {
			comp = None
		}
		return &JSONLines{Compression: comp}, nil
	}
	if o.Compression == "" {
		comp = Snappy
	}
	p, ok, err := ParquetFromSpoolFormat(spoolFormat, ParquetOptions{Compression: comp, RowGroupBytes: o.RowGroupBytes, PageBytes: o.PageBytes, NoDictionary: o.NoDictionary})
	if !ok {
		return nil, fmt.Errorf("unknown staged format %q", spoolFormat)
	}
	return p, err
}
