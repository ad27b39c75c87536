package redshift

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxSmallFile bounds a manifest or JSONPaths file; Redshift's are small.
const maxSmallFile = 64 << 20

// manifestEntry is one file a manifest lists.
type manifestEntry struct {
	URL       string
	Bucket    string
	Key       string
	Mandatory bool
	// ContentLength is meta.content_length; -1 when absent.
	ContentLength int64
}

// parseManifest reads a COPY manifest:
//
//	{"entries": [{"url": "s3://bucket/key", "mandatory": true, "meta": {"content_length": 123}}]}
//
// It must be one JSON object with an "entries" array; each entry needs a
// url naming a whole S3 object; mandatory defaults to false. Other keys
// are ignored, as Redshift ignores them.
func parseManifest(data []byte) ([]manifestEntry, error) {
	var doc struct {
		Entries *[]struct {
			URL       *string         `json:"url"`
			Mandatory json.RawMessage `json:"mandatory"`
			Meta      *struct {
				ContentLength json.RawMessage `json:"content_length"`
			} `json:"meta"`
		} `json:"entries"`
	}
	if err := decodeOne(data, &doc); err != nil {
		return nil, err
	}
	if doc.Entries == nil {
		return nil, errors.New(`no "entries" array`)
	}
	out := make([]manifestEntry, 0, len(*doc.Entries))
	for i, e := range *doc.Entries {
		if e.URL == nil {
			return nil, fmt.Errorf("entry %d has no url", i)
		}
		bucket, key, ok := strings.Cut(strings.TrimPrefix(*e.URL, "s3://"), "/")
		if !strings.HasPrefix(*e.URL, "s3://") || !ok || bucket == "" || key == "" || strings.HasSuffix(key, "/") {
			return nil, fmt.Errorf("entry %d: url %q is not the s3:// URL of an object", i, *e.URL)
		}
		me := manifestEntry{URL: *e.URL, Bucket: bucket, Key: key, ContentLength: -1}
		switch m := string(bytes.TrimSpace(e.Mandatory)); m {
		case "", "null", "false":
		case "true":
			me.Mandatory = true
		default:
			return nil, fmt.Errorf("entry %d: mandatory is %s, not true or false", i, m)
		}
		if e.Meta != nil && len(e.Meta.ContentLength) > 0 && string(e.Meta.ContentLength) != "null" {
			n, err := strconv.ParseInt(string(e.Meta.ContentLength), 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("entry %d: content_length %s is not a byte count", i, e.Meta.ContentLength)
			}
			me.ContentLength = n
		}
		out = append(out, me)
	}
	return out, nil
}

// jsonPath is one JSONPath expression of a JSONPaths file: a chain of
// object member names and array indexes from the root.
type jsonPath struct {
	text  string
	steps []pathStep
}

type pathStep struct {
	name  string
	index int // for an array step
	isIdx bool
}

// parseJSONPaths reads a JSONPaths file: {"jsonpaths": ["$.a", "$['b'][0]"]}.
// ok is false when the file's one key is not "jsonpaths", in which case
// Redshift quietly uses 'auto' instead.
func parseJSONPaths(data []byte) (paths []jsonPath, ok bool, err error) {
	var doc map[string]json.RawMessage
	if err := decodeOne(data, &doc); err != nil {
		return nil, false, err
	}
	raw, ok := doc["jsonpaths"]
	if !ok {
		return nil, false, nil
	}
	var exprs []json.RawMessage
	if err := json.Unmarshal(raw, &exprs); err != nil {
		return nil, false, errors.New(`"jsonpaths" is not an array`)
	}
	for i, e := range exprs {
		var s string
		if err := json.Unmarshal(e, &s); err != nil || s == "" {
			return nil, false, fmt.Errorf("jsonpaths element %d is an empty string or not a string", i)
		}
		p, err := parseJSONPath(s)
		if err != nil {
			return nil, false, fmt.Errorf("%q: %v", s, err)
		}
		paths = append(paths, p)
	}
	return paths, true, nil
}

// parseJSONPath parses $.a.b[0] or $['a']['b'][0]; the notations do not
// mix, and wildcards and filters are refused, as in Redshift.
func parseJSONPath(s string) (jsonPath, error) {
	p := jsonPath{text: s}
	if !strings.HasPrefix(s, "$") {
		return p, errors.New("it must start with $")
	}
	rest := s[1:]
	dot, bracket := false, false
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "['") || strings.HasPrefix(rest, `["`):
			q := rest[1]
			end := strings.IndexByte(rest[2:], q)
			if end < 0 || !strings.HasPrefix(rest[2+end:], string(q)+"]") {
				return p, errors.New("unterminated bracket")
			}
			name := rest[2 : 2+end]
			if name == "" || strings.ContainsAny(name, "*?") {
				return p, errors.New("an empty name, a wildcard or a filter")
			}
			bracket = true
			p.steps = append(p.steps, pathStep{name: name})
			rest = rest[2+end+2:]
		case strings.HasPrefix(rest, "["):
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return p, errors.New("unterminated bracket")
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 {
				return p, errors.New("an array index must be a non-negative integer")
			}
			p.steps = append(p.steps, pathStep{index: n, isIdx: true})
			rest = rest[end+1:]
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			name := rest[:end]
			if name == "" || strings.ContainsAny(name, "*?()@") {
				return p, errors.New("an empty name, a wildcard or a filter")
			}
			dot = true
			p.steps = append(p.steps, pathStep{name: name})
			rest = rest[end:]
		default:
			return p, fmt.Errorf("unexpected %q", rest)
		}
	}
	if dot && bracket {
		return p, errors.New("bracket and dot notation are mixed")
	}
	if len(p.steps) == 0 {
		return p, errors.New("it names no element")
	}
	return p, nil
}

// decodeOne decodes data as exactly one JSON value, with nothing but
// white space after it.
func decodeOne(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("not valid JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("more than one JSON value")
	}
	return nil
}
