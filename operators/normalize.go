package operators

import (
	"fmt"
	"math"
	"reflect"
	"time"
)

// normalize turns an expression result into a record value: string, int64,
// float64, bool, nil, time.Time, []any or map[string]any. expr-lang computes
// with int, builds []string (split) and may return durations or the meta
// view; records hold none of these.
//
// With copyAll, lists and objects are always copied, so that the result
// shares no memory with the record it came from. Without it, a container is
// copied only when something inside it must change (never changed in place:
// it may belong to the record or to the compiled program). changed reports
// whether the result differs from v.
func normalize(v any, copyAll bool) (out any, changed bool, err error) {
	switch x := v.(type) {
	case nil, bool, string, int64, float64, time.Time:
		return v, false, nil
	case int:
		return int64(x), true, nil
	case int8:
		return int64(x), true, nil
	case int16:
		return int64(x), true, nil
	case int32:
		return int64(x), true, nil
	case uint:
		return uintValue(uint64(x)), true, nil
	case uint8:
		return int64(x), true, nil
	case uint16:
		return int64(x), true, nil
	case uint32:
		return int64(x), true, nil
	case uint64:
		return uintValue(x), true, nil
	case float32:
		return float64(x), true, nil
	case time.Duration:
		return x.String(), true, nil
	case *metaView:
		return x.object(), true, nil
	case []byte:
		return string(x), true, nil
	case []string:
		l := make([]any, len(x))
		for i, s := range x {
			l[i] = s
		}
		return l, true, nil
	case []any:
		return normalizeList(x, copyAll)
	case map[string]any:
		return normalizeObject(x, copyAll)
	}
	return normalizeReflect(v, copyAll)
}

func uintValue(u uint64) any {
	if u > math.MaxInt64 {
		return float64(u)
	}
	return int64(u)
}

func normalizeList(l []any, copyAll bool) (any, bool, error) {
	var out []any
	if copyAll {
		out = make([]any, len(l))
	}
	for i, el := range l {
		n, changed, err := normalize(el, copyAll)
		if err != nil {
			return nil, false, fmt.Errorf("list item %d: %w", i, err)
		}
		if changed && out == nil {
			out = make([]any, len(l))
			copy(out, l[:i])
		}
		if out != nil {
			out[i] = n
		}
	}
	if out == nil {
		return l, false, nil
	}
	return out, true, nil
}

func normalizeObject(m map[string]any, copyAll bool) (any, bool, error) {
	var out map[string]any
	if copyAll {
		out = make(map[string]any, len(m))
	}
	for k, el := range m {
		n, changed, err := normalize(el, copyAll)
		if err != nil {
			return nil, false, fmt.Errorf("key %q: %w", k, err)
		}
		if changed && out == nil {
			out = make(map[string]any, len(m))
			for k2, v2 := range m {
				out[k2] = v2
			}
		}
		if out != nil {
			out[k] = n
		}
	}
	if out == nil {
		return m, false, nil
	}
	return out, true, nil
}

// normalizeReflect handles the typed lists and maps that expr-lang's
// builtins can return ([]int, map[string]int, …).
func normalizeReflect(v any, copyAll bool) (any, bool, error) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Slice, reflect.Array:
		l := make([]any, rv.Len())
		for i := range l {
			n, _, err := normalize(rv.Index(i).Interface(), copyAll)
			if err != nil {
				return nil, false, fmt.Errorf("list item %d: %w", i, err)
			}
			l[i] = n
		}
		return l, true, nil
	case reflect.Map:
		if rv.Type().Key().Kind() != reflect.String {
			break
		}
		m := make(map[string]any, rv.Len())
		it := rv.MapRange()
		for it.Next() {
			k := it.Key().String()
			n, _, err := normalize(it.Value().Interface(), copyAll)
			if err != nil {
				return nil, false, fmt.Errorf("key %q: %w", k, err)
			}
			m[k] = n
		}
		return m, true, nil
	case reflect.Pointer:
		if rv.IsNil() {
			return nil, true, nil
		}
		return normalize(rv.Elem().Interface(), copyAll)
	}
	return nil, false, fmt.Errorf("a %T cannot be stored in a record", v)
}
