package pipelines

import "fmt"

// CheckNames refuses pipelines of one process that share a name, as
// sluice run loads them from several files or a directory: a pipeline's
// name keys its checkpoint, the names of its outputs and its metrics, so
// two of one name would overwrite each other's progress. Each clash is
// reported at the later file's name, with where the first one is.
func CheckNames(specs []*Spec) error {
	var errs ErrorList
	first := map[string]*Spec{}
	for _, s := range specs {
		f := first[s.Name]
		if f == nil {
			first[s.Name] = s
			continue
		}
		at, fat := s.loc.valAt("name"), f.loc.valAt("name")
		errs = append(errs, Error{File: s.File, Line: at.Line, Col: at.Col, Path: "name",
			Msg: fmt.Sprintf("pipeline %q is also the name of %s:%d:%d: one process runs one pipeline of a name (names key checkpoints and outputs); rename one", s.Name, f.File, fat.Line, fat.Col)})
	}
	return errs.err()
}
