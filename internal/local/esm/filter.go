package esm

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Filter is a compiled Lambda event filter pattern (FilterCriteria). A
// record is matched as the JSON Lambda would hand the function, so a
// DynamoDB stream pattern names fields such as eventName and
// dynamodb.NewImage.sk.S.
//
// Supported, with Lambda's (EventBridge's) semantics: objects (every key
// must match), arrays of alternatives (any may match, and a field holding an
// array matches if any of its elements does), exact strings, numbers,
// booleans and null, and the operators prefix, suffix, equals-ignore-case,
// exists, anything-but (a value, a list of values, or {prefix} / {suffix})
// and numeric (=, <, <=, >, >= with up to two comparisons).
type Filter struct {
	fields map[string]any // compiled: *Filter for objects, []matcher for arrays
}

type matcher func(v any, present bool) bool

// CompileFilter compiles a filter pattern. It fails on a pattern that is not
// a JSON object, on an operator it does not support, and on a malformed one.
func CompileFilter(pattern string) (*Filter, error) {
	var p any
	if err := json.Unmarshal([]byte(pattern), &p); err != nil {
		return nil, fmt.Errorf("filter pattern %s: %w", pattern, err)
	}
	obj, ok := p.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("filter pattern %s: not a JSON object", pattern)
	}
	f, err := compileObject(obj, "")
	if err != nil {
		return nil, fmt.Errorf("filter pattern %s: %w", pattern, err)
	}
	return f, nil
}

func compileObject(obj map[string]any, path string) (*Filter, error) {
	f := &Filter{fields: make(map[string]any, len(obj))}
	for k, v := range obj {
		p := strings.TrimPrefix(path+"."+k, ".")
		switch v := v.(type) {
		case map[string]any:
			sub, err := compileObject(v, p)
			if err != nil {
				return nil, err
			}
			f.fields[k] = sub
		case []any:
			ms := make([]matcher, 0, len(v))
			for _, alt := range v {
				m, err := compileMatcher(alt, p)
				if err != nil {
					return nil, err
				}
				ms = append(ms, m)
			}
			f.fields[k] = ms
		default:
			return nil, fmt.Errorf("%s: a pattern's values are objects or arrays, not %v", p, v)
		}
	}
	return f, nil
}

func compileMatcher(alt any, path string) (matcher, error) {
	switch a := alt.(type) {
	case string, float64, bool, nil:
		return func(v any, present bool) bool { return present && equal(a, v) }, nil
	case map[string]any:
		if len(a) != 1 {
			return nil, fmt.Errorf("%s: an operator object has one key, not %d", path, len(a))
		}
		for op, arg := range a {
			return compileOperator(op, arg, path)
		}
	}
	return nil, fmt.Errorf("%s: unsupported pattern value %v", path, alt)
}

func compileOperator(op string, arg any, path string) (matcher, error) {
	bad := func() (matcher, error) { return nil, fmt.Errorf("%s: malformed %q operator: %v", path, op, arg) }
	switch op {
	case "prefix", "suffix", "equals-ignore-case":
		s, ok := arg.(string)
		if !ok {
			return bad()
		}
		return func(v any, present bool) bool {
			str, ok := v.(string)
			switch {
			case !present || !ok:
				return false
			case op == "prefix":
				return strings.HasPrefix(str, s)
			case op == "suffix":
				return strings.HasSuffix(str, s)
			}
			return strings.EqualFold(str, s)
		}, nil
	case "exists":
		want, ok := arg.(bool)
		if !ok {
			return bad()
		}
		return func(v any, present bool) bool { return present == want }, nil
	case "anything-but":
		switch x := arg.(type) {
		case string, float64, bool:
			return func(v any, present bool) bool { return present && !equal(x, v) }, nil
		case []any:
			return func(v any, present bool) bool {
				return present && !slices.ContainsFunc(x, func(e any) bool { return equal(e, v) })
			}, nil
		case map[string]any:
			inner, err := compileMatcher(x, path)
			if err != nil || len(x) != 1 || (x["prefix"] == nil && x["suffix"] == nil) {
				return nil, fmt.Errorf("%s: anything-but takes a value, a list of values, {prefix} or {suffix}", path)
			}
			return func(v any, present bool) bool {
				_, isString := v.(string)
				return present && isString && !inner(v, present)
			}, nil
		}
		return bad()
	case "numeric":
		l, ok := arg.([]any)
		if !ok || (len(l) != 2 && len(l) != 4) {
			return bad()
		}
		type cmp struct {
			op string
			n  float64
		}
		var cmps []cmp
		for i := 0; i < len(l); i += 2 {
			o, ok1 := l[i].(string)
			n, ok2 := l[i+1].(float64)
			if !ok1 || !ok2 || !slices.Contains([]string{"=", "<", "<=", ">", ">="}, o) {
				return bad()
			}
			cmps = append(cmps, cmp{o, n})
		}
		return func(v any, present bool) bool {
			x, ok := v.(float64)
			if !present || !ok {
				return false
			}
			for _, c := range cmps {
				var hold bool
				switch c.op {
				case "=":
					hold = x == c.n
				case "<":
					hold = x < c.n
				case "<=":
					hold = x <= c.n
				case ">":
					hold = x > c.n
				case ">=":
					hold = x >= c.n
				}
				if !hold {
					return false
				}
			}
			return true
		}, nil
	}
	return nil, fmt.Errorf("%s: filter operator %q is not supported by ferry local", path, op)
}

func equal(a, b any) bool {
	switch a := a.(type) {
	case nil:
		return b == nil
	case string, float64, bool:
		return a == b
	}
	return false
}

// Match reports whether the JSON-decoded value v (an object) matches f.
func (f *Filter) Match(v any) bool {
	obj, _ := v.(map[string]any)
	for k, want := range f.fields {
		got, present := obj[k]
		switch want := want.(type) {
		case *Filter:
			if !present {
				return false
			}
			if l, ok := got.([]any); ok {
				if !slices.ContainsFunc(l, want.Match) {
					return false
				}
			} else if !want.Match(got) {
				return false
			}
		case []matcher:
			if !matchAny(want, got, present) {
				return false
			}
		}
	}
	return true
}

func matchAny(ms []matcher, v any, present bool) bool {
	if l, ok := v.([]any); ok && present {
		for _, e := range l {
			if matchAny(ms, e, true) {
				return true
			}
		}
		return false
	}
	for _, m := range ms {
		if m(v, present) {
			return true
		}
	}
	return false
}

// Filters is a mapping's FilterCriteria: a record is delivered if it
// matches any of them (or if there are none).
type Filters []*Filter

// CompileFilters compiles each pattern, reporting every bad one at once.
func CompileFilters(patterns []string) (Filters, error) {
	var fs Filters
	var errs []error
	for _, p := range patterns {
		f, err := CompileFilter(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		fs = append(fs, f)
	}
	return fs, errors.Join(errs...)
}

// Match reports whether the record rec (any value that encodes to a JSON
// object, such as an events.DynamoDBEventRecord) passes the filters.
func (fs Filters) Match(rec any) (bool, error) {
	if len(fs) == 0 {
		return true, nil
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return false, err
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return false, err
	}
	return slices.ContainsFunc(fs, func(f *Filter) bool { return f.Match(v) }), nil
}
