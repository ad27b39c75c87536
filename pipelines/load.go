package pipelines

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Load reads, decodes and validates the pipeline file at path. ${VAR}
// references are looked up with lookup (nil: os.LookupEnv). Relative
// paths in the file are relative to the file's directory. When the file is
// invalid the error is an ErrorList with every problem found.
func Load(path string, lookup Lookup) (*Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", path, err)
	}
	defer f.Close()
	// Read one byte past the limit to tell a file at the limit from a
	// larger one without reading all of a huge one.
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("pipeline %s: %w", path, err)
	}
	if len(data) > MaxFileSize {
		return nil, ErrorList{{File: path, Msg: fmt.Sprintf("the file is larger than %s, the most a pipeline file may be", formatSize(MaxFileSize))}}
	}
	return Parse(path, filepath.Dir(path), data, lookup)
}

// Parse decodes and validates a pipeline file held in data. file names it
// in errors; dir is the directory that relative paths are relative to.
// Like Load, it returns an ErrorList when the file is invalid.
func Parse(file, dir string, data []byte, lookup Lookup) (*Spec, error) {
	spec, errs := decodeFile(file, data, lookup)
	spec.Dir = dir
	_, verrs := compile(spec, runtime{dir: dir}, errs)
	errs = append(errs, verrs...)
	spec.redactErrors(errs)
	if err := errs.err(); err != nil {
		return nil, err
	}
	return spec, nil
}

// decodeFile reads data into a Spec, collecting every problem of shape and
// type. The Spec holds what could be read even when there are problems.
func decodeFile(file string, data []byte, lookup Lookup) (*Spec, ErrorList) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	spec := &Spec{File: file}
	spec.loc = newLocations(file)
	d := &decoder{file: file, src: newSource(data), lookup: lookup, loc: &spec.loc}
	if root := d.parseDocument(data); root != nil {
		d.spec(root, spec)
	}
	return spec, d.errs
}
