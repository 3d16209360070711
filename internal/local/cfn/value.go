package cfn

import (
	"math"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// Value is a property of a template, resolved only as far as it is read:
// Get and Index step into it (resolving an intrinsic only when they meet one
// on the way), and String, Int, Bool, Strings and Any resolve what is left.
// A Value that does not exist (a property not set, or AWS::NoValue) reads
// as the zero value with no error. An error met on the way is returned by
// the reading method.
type Value struct {
	r    *Resolver
	w    *where
	node *yaml.Node // unresolved, when resolved is false
	v    any        // resolved
	done bool       // v holds the value
	err  error
}

// Exists reports whether the property is set (and is not AWS::NoValue).
// A Value whose resolution failed exists, so that reading it reports the
// error.
func (v Value) Exists() bool {
	if v.err != nil {
		return true
	}
	if !v.done && v.node != nil {
		if _, _, call := intrinsic(v.node, false); call {
			v = v.resolved()
			if v.err != nil {
				return true
			}
		}
	}
	if v.done {
		_, none := v.v.(noValue)
		return v.v != nil && !none
	}
	return v.node != nil && v.node.ShortTag() != "!!null"
}

// Path names the property, for messages: "resource ID, Properties.X.Y".
func (v Value) Path() string {
	if v.w == nil {
		return ""
	}
	if v.w.resource == "" {
		return v.w.path
	}
	return "resource " + v.w.resource + ", " + v.w.path
}

// Fail returns an *Error about v, for a value of the wrong kind.
func (v Value) Fail(reason string) error {
	if v.w == nil {
		return &Error{Reason: reason}
	}
	return &Error{Resource: v.w.resource, Path: v.w.path, Reason: reason}
}

// resolved returns v with its value resolved.
func (v Value) resolved() Value {
	if v.err != nil || v.done {
		return v
	}
	out, err := v.r.resolve(v.w, v.node)
	return Value{r: v.r, w: v.w, v: out, done: true, err: err}
}

// Get steps through the keys in path (list indexes in decimal).
func (v Value) Get(path ...string) Value {
	for _, key := range path {
		v = v.step(key)
	}
	return v
}

// Index returns list item i.
func (v Value) Index(i int) Value { return v.step(strconv.Itoa(i)) }

func (v Value) step(key string) Value {
	if v.err != nil {
		return v
	}
	w := v.w.at(key)
	if !v.done {
		n := v.node
		for n != nil && n.Kind == yaml.AliasNode {
			n = n.Alias
		}
		_, _, isCall := intrinsic(n, false)
		switch {
		case n == nil:
			return Value{r: v.r, w: w}
		case isCall:
			return v.resolved().step(key)
		case n.Kind == yaml.MappingNode:
			return Value{r: v.r, w: w, node: child(n, key)}
		case n.Kind == yaml.SequenceNode:
			for _, c := range n.Content {
				if _, _, call := intrinsic(c, false); call { // an item may vanish (AWS::NoValue)
					return v.resolved().step(key)
				}
			}
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(n.Content) {
				return Value{r: v.r, w: w}
			}
			return Value{r: v.r, w: w, node: n.Content[i]}
		}
		return Value{r: v.r, w: w}
	}
	switch x := v.v.(type) {
	case map[string]any:
		if e, ok := x[key]; ok {
			return Value{r: v.r, w: w, v: e, done: true}
		}
	case []any:
		if i, err := strconv.Atoi(key); err == nil && i >= 0 && i < len(x) {
			return Value{r: v.r, w: w, v: x[i], done: true}
		}
	}
	return Value{r: v.r, w: w}
}

// Len returns the number of items of a list (0 if v is not a list).
func (v Value) Len() (int, error) {
	v = v.resolvedShallow()
	if v.err != nil {
		return 0, v.err
	}
	if !v.done {
		if v.node != nil && v.node.Kind == yaml.SequenceNode {
			return len(v.node.Content), nil
		}
		if v.Exists() {
			return 0, v.Fail("not a list")
		}
		return 0, nil
	}
	l, ok := v.v.([]any)
	if !ok && v.Exists() {
		return 0, v.Fail("not a list")
	}
	return len(l), nil
}

// Keys returns the keys of a mapping, in template order when unresolved.
func (v Value) Keys() ([]string, error) {
	v = v.resolvedShallow()
	if v.err != nil {
		return nil, v.err
	}
	var keys []string
	if !v.done {
		if v.node == nil {
			return nil, nil
		}
		if v.node.Kind != yaml.MappingNode {
			return nil, v.Fail("not a mapping")
		}
		for i := 0; i+1 < len(v.node.Content); i += 2 {
			keys = append(keys, v.node.Content[i].Value)
		}
		return keys, nil
	}
	m, ok := v.v.(map[string]any)
	if !ok {
		if v.Exists() {
			return nil, v.Fail("not a mapping")
		}
		return nil, nil
	}
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

// resolvedShallow resolves v if it is an intrinsic or a list holding one, so
// its shape can be read, and leaves plain mappings and lists unresolved.
func (v Value) resolvedShallow() Value {
	if v.err != nil || v.done || v.node == nil {
		return v
	}
	if _, _, call := intrinsic(v.node, false); call {
		return v.resolved()
	}
	if v.node.Kind == yaml.SequenceNode {
		for _, c := range v.node.Content {
			if _, _, call := intrinsic(c, false); call {
				return v.resolved()
			}
		}
	}
	return v
}

// Any resolves v fully: string, int64, float64, bool, nil, []any or
// map[string]any (nil when v does not exist).
func (v Value) Any() (any, error) {
	v = v.resolved()
	if v.err != nil {
		return nil, v.err
	}
	if _, none := v.v.(noValue); none {
		return nil, nil
	}
	return v.v, nil
}

// String resolves v as a string ("" when v does not exist); numbers and
// booleans are converted, as CloudFormation does.
func (v Value) String() (string, error) {
	x, err := v.Any()
	if err != nil || x == nil {
		return "", err
	}
	s, ok := asString(x)
	if !ok {
		return "", v.Fail("not a string")
	}
	return s, nil
}

// Int resolves v as a whole number (0 when v does not exist); a string of
// digits is accepted, as CloudFormation does.
func (v Value) Int() (int64, error) {
	x, err := v.Any()
	if err != nil || x == nil {
		return 0, err
	}
	switch x := x.(type) {
	case int64:
		return x, nil
	case float64:
		if x == math.Trunc(x) {
			return int64(x), nil
		}
	case string:
		if i, err := strconv.ParseInt(x, 10, 64); err == nil {
			return i, nil
		}
	}
	return 0, v.Fail("not a whole number")
}

// Bool resolves v as a boolean (false when v does not exist); "true" and
// "false" strings are accepted.
func (v Value) Bool() (bool, error) {
	x, err := v.Any()
	if err != nil || x == nil {
		return false, err
	}
	switch x := x.(type) {
	case bool:
		return x, nil
	case string:
		if b, err := strconv.ParseBool(x); err == nil {
			return b, nil
		}
	}
	return false, v.Fail("not a boolean")
}

// Strings resolves v as a list of strings (nil when v does not exist).
func (v Value) Strings() ([]string, error) {
	x, err := v.Any()
	if err != nil || x == nil {
		return nil, err
	}
	l, ok := x.([]any)
	if !ok {
		return nil, v.Fail("not a list")
	}
	out := make([]string, len(l))
	for i, e := range l {
		if out[i], ok = asString(e); !ok {
			return nil, v.Index(i).Fail("not a string")
		}
	}
	return out, nil
}
