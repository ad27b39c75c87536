package pipelines

import (
	"fmt"
	"strings"
)

// Lookup finds an environment variable; os.LookupEnv is the default.
type Lookup func(name string) (string, bool)

// secret is a value that interpolation took from the environment. It is
// never printed: errors show the ${NAME} it came from instead.
type secret struct {
	name, value string
	// start and end are where the value lies in the expanded scalar.
	start, end int
}

// interpolation is the result of expanding ${VAR} in one scalar.
type interpolation struct {
	text    mapped
	secrets []secret
}

// interpolateError is a bad or unset reference, at its position.
type interpolateError struct {
	at  Pos
	msg string
}

// interpolate expands ${NAME} and ${NAME:-default} in v (whose bytes are at
// the positions in pos). ${NAME:-default} uses the default when NAME is unset
// or empty, as the shell does; $${ stands for a literal ${. A value taken
// from the environment maps to the position of its $.
func interpolate(v string, pos []Pos, lookup Lookup) (interpolation, []interpolateError) {
	var res interpolation
	var errs []interpolateError
	out := &res.text
	for i := 0; i < len(v); {
		switch {
		case strings.HasPrefix(v[i:], "$${"):
			out.text = append(out.text, "${"...)
			out.pos = append(out.pos, pos[i+1], pos[i+2])
			i += 3
		case strings.HasPrefix(v[i:], "${"):
			end := strings.IndexByte(v[i:], '}')
			if end < 0 {
				errs = append(errs, interpolateError{pos[i], "unterminated ${ (close it with }, or write $${ for a literal ${)"})
				return res, errs
			}
			ref := v[i+2 : i+end]
			name, def, hasDef := strings.Cut(ref, ":-")
			if !validVarName(name) {
				errs = append(errs, interpolateError{pos[i], fmt.Sprintf("bad variable reference ${%s}: a name is letters, digits and _, not starting with a digit (write $${ for a literal ${)", ref)})
				i += end + 1
				continue
			}
			val, ok := lookup(name)
			switch {
			case ok && (val != "" || !hasDef):
				start := len(out.text)
				for j := 0; j < len(val); j++ {
					out.text = append(out.text, val[j])
					out.pos = append(out.pos, pos[i])
				}
				if val != "" {
					res.secrets = append(res.secrets, secret{name: name, value: val, start: start, end: len(out.text)})
				}
			case hasDef:
				d := i + 2 + len(name) + 2 // where the default starts
				out.text = append(out.text, def...)
				out.pos = append(out.pos, pos[d:d+len(def)]...)
			default:
				errs = append(errs, interpolateError{pos[i], fmt.Sprintf("environment variable %s is not set (set it, or give a default: ${%s:-value})", name, name)})
			}
			i += end + 1
		default:
			out.text = append(out.text, v[i])
			out.pos = append(out.pos, pos[i])
			i++
		}
	}
	return res, errs
}

func validVarName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// hideSecrets replaces every secret value in s with the ${NAME} it came from.
func hideSecrets(s string, secrets []secret) string {
	for _, sc := range secrets {
		if sc.value != "" {
			s = strings.ReplaceAll(s, sc.value, "${"+sc.name+"}")
		}
	}
	return s
}
