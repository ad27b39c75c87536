package engine

import (
	"errors"
	"fmt"
	"strings"
)

// ConfigError is one problem in the configuration of a component: a
// source, a step or a sink. Each component checks its own configuration
// (a Check method on its Config, which its constructor runs too) and names
// every problem by the key the pipeline file writes it under, so that the
// pipeline compiler can point at the line and column of that key while a
// Go caller still reads a message that says what to change.
type ConfigError struct {
	// Key names the setting as the pipeline file does, relative to the
	// component's own mapping: "bucket", "tls", "paths[1]",
	// "aggregate.p95_ms". A setting the component takes from keys the
	// file writes beside or above that mapping is named as written there
	// ("buffer.size", "partition_keys.route" for a sink;
	// "watermark.max_future", "event_time" for a window). Empty: the
	// configuration as a whole.
	Key string
	// Msg says what is wrong and what to write instead.
	Msg string
	// Line and Column, when Line is not 0, point inside Key's text value
	// (an expression, a key template): 1-based, Column counted in
	// characters.
	Line, Column int
	// AtKey says the problem is that the setting is there at all (it needs
	// another one, or does not apply), not what its value is: the
	// pipeline file then points at the key rather than at its value.
	AtKey bool
}

func (e ConfigError) Error() string {
	var b strings.Builder
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d, column %d: ", e.Line, e.Column)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ConfigErrors is every problem a Check found. A Check returns it as its
// error (nil when it is empty, see Err), and errors.As gets it back from
// a constructor's error, which wraps it with the component's name.
type ConfigErrors []ConfigError

// Error returns the problems one per line.
func (l ConfigErrors) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Add appends a problem with key, its message formatted as fmt.Sprintf
// does.
func (l *ConfigErrors) Add(key, format string, args ...any) {
	*l = append(*l, ConfigError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// AddKey appends a problem with the presence of key (ConfigError.AtKey).
func (l *ConfigErrors) AddKey(key, format string, args ...any) {
	*l = append(*l, ConfigError{Key: key, Msg: fmt.Sprintf(format, args...), AtKey: true})
}

// Join appends the problems of err, a Check's result: a ConfigErrors is
// taken apart and each of its keys put under prefix ("staging" and
// "bucket" give "staging.bucket"); any other error becomes a problem at
// prefix itself.
func (l *ConfigErrors) Join(prefix string, err error) {
	if err == nil {
		return
	}
	var list ConfigErrors
	if !errors.As(err, &list) {
		*l = append(*l, ConfigError{Key: prefix, Msg: err.Error()})
		return
	}
	for _, e := range list {
		switch {
		case prefix == "":
		case e.Key == "":
			e.Key = prefix
		case strings.HasPrefix(e.Key, "["):
			e.Key = prefix + e.Key
		default:
			e.Key = prefix + "." + e.Key
		}
		*l = append(*l, e)
	}
}

// Err returns l as an error, or nil when it holds no problem (a nil
// ConfigErrors in an error would not compare equal to nil).
func (l ConfigErrors) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
