package cfn

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Error is a property that was read but could not be resolved.
type Error struct {
	Resource string // logical ID ("" outside Resources, e.g. in a condition)
	Path     string // property path, e.g. "Properties.RedrivePolicy.deadLetterTargetArn"
	Function string // the intrinsic function, e.g. "Fn::ImportValue"; "" for a type error
	Reason   string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("template: ")
	if e.Resource != "" {
		b.WriteString("resource " + e.Resource + ", ")
	}
	b.WriteString(e.Path)
	if e.Function != "" {
		b.WriteString(": " + e.Function)
	}
	b.WriteString(": " + e.Reason)
	return b.String()
}

// noValue is what Ref AWS::NoValue resolves to: the property, or list item,
// is left out.
type noValue struct{}

// Resolver resolves the properties of one template against one stack. It is
// not safe for concurrent use.
type Resolver struct {
	t          *Template
	s          Stack
	conditions map[string]bool
	evaluating map[string]bool // conditions and resources being resolved, against cycles
}

// NewResolver returns a resolver of t's properties for stack s. It fails if s
// lacks a name, region or account.
func NewResolver(t *Template, s Stack) (*Resolver, error) {
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("stack: %w", err)
	}
	return &Resolver{t: t, s: s.withDefaults(), conditions: map[string]bool{}, evaluating: map[string]bool{}}, nil
}

// Template returns the template r resolves.
func (r *Resolver) Template() *Template { return r.t }

// Stack returns the stack r resolves against, with defaults filled in.
func (r *Resolver) Stack() Stack { return r.s }

// Enabled reports whether the resource id exists in this stack: it is in the
// template and its Condition, if any, holds.
func (r *Resolver) Enabled(id string) (bool, error) {
	res, ok := r.t.Resources[id]
	if !ok {
		return false, nil
	}
	if res.Condition == "" {
		return true, nil
	}
	return r.Condition(res.Condition)
}

// Condition evaluates the template's condition name.
func (r *Resolver) Condition(name string) (bool, error) {
	if v, ok := r.conditions[name]; ok {
		return v, nil
	}
	n, ok := r.t.Conditions[name]
	if !ok {
		return false, &Error{Path: "Conditions", Function: "Condition", Reason: fmt.Sprintf("no condition %q", name)}
	}
	key := "condition " + name
	if r.evaluating[key] {
		return false, &Error{Path: "Conditions." + name, Reason: "condition refers to itself"}
	}
	r.evaluating[key] = true
	defer delete(r.evaluating, key)
	v, err := r.evalCondition(&where{path: "Conditions." + name}, n)
	if err != nil {
		return false, err
	}
	r.conditions[name] = v
	return v, nil
}

// Ref returns what Ref name resolves to (a parameter, a pseudo parameter
// or a resource), as a string.
func (r *Resolver) Ref(name string) (string, error) {
	return r.stringOf(&where{path: "Ref " + name}, func(w *where) (any, error) { return r.ref(w, name) })
}

// Attribute returns what Fn::GetAtt id.attr resolves to, as a string.
func (r *Resolver) Attribute(id, attr string) (string, error) {
	return r.stringOf(&where{resource: id, path: "Fn::GetAtt " + id + "." + attr}, func(w *where) (any, error) { return r.getAtt(w, id, attr) })
}

func (r *Resolver) stringOf(w *where, f func(*where) (any, error)) (string, error) {
	v, err := f(w)
	if err != nil {
		return "", err
	}
	s, ok := asString(v)
	if !ok {
		return "", w.fail("", "not a string")
	}
	return s, nil
}

// Property returns the property at path (keys, or list indexes in decimal)
// of resource id's Properties, unresolved until read. For an
// AWS::Serverless::Function, a property it does not set is looked up in
// Globals.Function.
func (r *Resolver) Property(id string, path ...string) Value {
	res, ok := r.t.Resources[id]
	if !ok {
		return Value{err: &Error{Resource: id, Path: "Properties", Reason: "no such resource"}}
	}
	v := Value{r: r, w: &where{resource: id, path: "Properties"}, node: res.Properties}
	got := v.Get(path...)
	if !got.Exists() && res.Type == "AWS::Serverless::Function" && len(path) > 0 && r.t.Globals != nil {
		g := Value{r: r, w: &where{path: "Globals.Function"}, node: child(r.t.Globals, "Function")}
		if gv := g.Get(path...); gv.Exists() {
			return gv
		}
	}
	return got
}

type where struct {
	resource string
	path     string
}

func (w *where) at(key string) *where { return &where{resource: w.resource, path: w.path + "." + key} }

func (w *where) fail(fn, format string, args ...any) error {
	return &Error{Resource: w.resource, Path: w.path, Function: fn, Reason: fmt.Sprintf(format, args...)}
}

// intrinsic reports the function n calls, as "Ref", "Condition" or
// "Fn::Name", and its argument; ok is false for plain values. cond allows the
// long form {Condition: name}, which is an intrinsic only in conditions.
func intrinsic(n *yaml.Node, cond bool) (fn string, arg *yaml.Node, ok bool) {
	if n == nil {
		return "", nil, false
	}
	if tag := n.Tag; strings.HasPrefix(tag, "!") && !strings.HasPrefix(tag, "!!") {
		name := tag[1:]
		switch name {
		case "Ref", "Condition":
			fn = name
		default:
			fn = "Fn::" + name
		}
		plain := *n
		plain.Tag = ""
		plain.Style &^= yaml.TaggedStyle
		return fn, &plain, true
	}
	if n.Kind == yaml.MappingNode && len(n.Content) == 2 {
		k := n.Content[0].Value
		if k == "Ref" || strings.HasPrefix(k, "Fn::") || (cond && k == "Condition") {
			return k, n.Content[1], true
		}
	}
	return "", nil, false
}

// resolve resolves n fully into Go values: string, int64, float64, bool, nil,
// []any, map[string]any, or noValue.
func (r *Resolver) resolve(w *where, n *yaml.Node) (any, error) {
	if n == nil {
		return nil, nil
	}
	if fn, arg, ok := intrinsic(n, false); ok {
		return r.call(w, fn, arg)
	}
	switch n.Kind {
	case yaml.AliasNode:
		return r.resolve(w, n.Alias)
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			v, err := r.resolve(w.at(k), n.Content[i+1])
			if err != nil {
				return nil, err
			}
			if _, skip := v.(noValue); !skip {
				m[k] = v
			}
		}
		return m, nil
	case yaml.SequenceNode:
		l := make([]any, 0, len(n.Content))
		for i, c := range n.Content {
			v, err := r.resolve(w.at(strconv.Itoa(i)), c)
			if err != nil {
				return nil, err
			}
			if _, skip := v.(noValue); !skip {
				l = append(l, v)
			}
		}
		return l, nil
	case yaml.ScalarNode:
		return scalar(n), nil
	}
	return nil, w.fail("", "unexpected YAML node")
}

func scalar(n *yaml.Node) any {
	switch n.ShortTag() {
	case "!!null":
		return nil
	case "!!bool":
		var b bool
		if n.Decode(&b) == nil {
			return b
		}
	case "!!int":
		var i int64
		if n.Decode(&i) == nil {
			return i
		}
	case "!!float":
		var f float64
		if n.Decode(&f) == nil {
			return f
		}
	}
	return n.Value
}

// call resolves one intrinsic function.
func (r *Resolver) call(w *where, fn string, arg *yaml.Node) (any, error) {
	switch fn {
	case "Ref":
		name, err := r.stringArg(w, fn, arg)
		if err != nil {
			return nil, err
		}
		return r.ref(w, name)
	case "Fn::GetAtt":
		id, attr, err := r.getAttArgs(w, arg)
		if err != nil {
			return nil, err
		}
		return r.getAtt(w, id, attr)
	case "Fn::Sub":
		return r.sub(w, arg)
	case "Fn::If":
		args, err := r.list(w, fn, arg, 3)
		if err != nil {
			return nil, err
		}
		name, err := r.stringArg(w, fn, args[0])
		if err != nil {
			return nil, err
		}
		ok, err := r.Condition(name)
		if err != nil {
			return nil, err
		}
		if ok {
			return r.resolve(w, args[1])
		}
		return r.resolve(w, args[2])
	case "Fn::Join":
		args, err := r.list(w, fn, arg, 2)
		if err != nil {
			return nil, err
		}
		sep, err := r.stringArg(w, fn, args[0])
		if err != nil {
			return nil, err
		}
		items, err := r.stringsArg(w, fn, args[1])
		if err != nil {
			return nil, err
		}
		return strings.Join(items, sep), nil
	case "Fn::Split":
		args, err := r.list(w, fn, arg, 2)
		if err != nil {
			return nil, err
		}
		sep, err := r.stringArg(w, fn, args[0])
		if err != nil {
			return nil, err
		}
		s, err := r.stringArg(w, fn, args[1])
		if err != nil {
			return nil, err
		}
		var out []any
		for _, p := range strings.Split(s, sep) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::Select":
		args, err := r.list(w, fn, arg, 2)
		if err != nil {
			return nil, err
		}
		is, err := r.stringArg(w, fn, args[0])
		if err != nil {
			return nil, err
		}
		i, err := strconv.Atoi(is)
		if err != nil {
			return nil, w.fail(fn, "index %q is not a number", is)
		}
		v, err := r.resolve(w, args[1])
		if err != nil {
			return nil, err
		}
		l, ok := v.([]any)
		if !ok {
			return nil, w.fail(fn, "second argument is not a list")
		}
		if i < 0 || i >= len(l) {
			return nil, w.fail(fn, "index %d is out of range (list of %d)", i, len(l))
		}
		return l[i], nil
	}
	return nil, w.fail(fn, "not supported by the local runtime")
}

// list resolves arg as a list of n nodes (unresolved).
func (r *Resolver) list(w *where, fn string, arg *yaml.Node, n int) ([]*yaml.Node, error) {
	if arg.Kind != yaml.SequenceNode || len(arg.Content) != n {
		return nil, w.fail(fn, "takes a list of %d arguments", n)
	}
	return arg.Content, nil
}

func (r *Resolver) stringArg(w *where, fn string, n *yaml.Node) (string, error) {
	v, err := r.resolve(w, n)
	if err != nil {
		return "", err
	}
	s, ok := asString(v)
	if !ok {
		return "", w.fail(fn, "argument is not a string")
	}
	return s, nil
}

func (r *Resolver) stringsArg(w *where, fn string, n *yaml.Node) ([]string, error) {
	v, err := r.resolve(w, n)
	if err != nil {
		return nil, err
	}
	l, ok := v.([]any)
	if !ok {
		return nil, w.fail(fn, "argument is not a list")
	}
	out := make([]string, len(l))
	for i, e := range l {
		if out[i], ok = asString(e); !ok {
			return nil, w.fail(fn, "list item %d is not a string", i)
		}
	}
	return out, nil
}

func (r *Resolver) getAttArgs(w *where, arg *yaml.Node) (id, attr string, err error) {
	const fn = "Fn::GetAtt"
	switch arg.Kind {
	case yaml.ScalarNode:
		id, attr, ok := strings.Cut(arg.Value, ".")
		if !ok {
			return "", "", w.fail(fn, "%q is not RESOURCE.ATTRIBUTE", arg.Value)
		}
		return id, attr, nil
	case yaml.SequenceNode:
		if len(arg.Content) == 2 {
			if id, err = r.stringArg(w, fn, arg.Content[0]); err != nil {
				return "", "", err
			}
			if attr, err = r.stringArg(w, fn, arg.Content[1]); err != nil {
				return "", "", err
			}
			return id, attr, nil
		}
	}
	return "", "", w.fail(fn, "takes RESOURCE.ATTRIBUTE or [RESOURCE, ATTRIBUTE]")
}

// ref resolves Ref name: a parameter, a pseudo parameter or a resource.
func (r *Resolver) ref(w *where, name string) (any, error) {
	switch name {
	case "AWS::StackName":
		return r.s.Name, nil
	case "AWS::Region":
		return r.s.Region, nil
	case "AWS::AccountId":
		return r.s.AccountID, nil
	case "AWS::Partition":
		return r.s.Partition, nil
	case "AWS::URLSuffix":
		return r.s.URLSuffix, nil
	case "AWS::StackId":
		return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/local", r.s.Partition, r.s.Region, r.s.AccountID, r.s.Name), nil
	case "AWS::NoValue":
		return noValue{}, nil
	}
	if p, ok := r.t.Parameters[name]; ok {
		v, ok := r.s.Parameters[name]
		if !ok {
			if p.Default == nil {
				return nil, w.fail("Ref", "parameter %s has neither a value in the stack nor a Default", name)
			}
			v = *p.Default
		}
		if strings.HasPrefix(p.Type, "List<") || p.Type == "CommaDelimitedList" {
			var l []any
			for _, e := range strings.Split(v, ",") {
				l = append(l, strings.TrimSpace(e))
			}
			return l, nil
		}
		return v, nil
	}
	if _, ok := r.t.Resources[name]; ok {
		return r.getAtt(w, name, "")
	}
	if strings.HasPrefix(name, "AWS::") {
		return nil, w.fail("Ref", "pseudo parameter %s is not supported by the local runtime", name)
	}
	return nil, w.fail("Ref", "%s is neither a parameter nor a resource", name)
}

// getAtt returns attribute attr of resource id; attr "" is what Ref returns.
func (r *Resolver) getAtt(w *where, id, attr string) (any, error) {
	fn := "Fn::GetAtt"
	if attr == "" {
		fn = "Ref"
	}
	res, ok := r.t.Resources[id]
	if !ok {
		return nil, w.fail(fn, "no resource %s", id)
	}
	if on, err := r.Enabled(id); err != nil {
		return nil, err
	} else if !on {
		return nil, w.fail(fn, "resource %s is not created (its condition %s is false)", id, res.Condition)
	}
	key := "resource " + id
	if r.evaluating[key] {
		return nil, w.fail(fn, "resource %s refers to itself", id)
	}
	r.evaluating[key] = true
	defer delete(r.evaluating, key)

	s := r.s
	name := func(prop string) (string, error) {
		v := r.Property(id, prop)
		if !v.Exists() {
			// CloudFormation adds a random suffix; the local stack does not.
			if res.Type == "AWS::S3::Bucket" { // bucket names are lower case
				return strings.ToLower(s.Name + "-" + id), nil
			}
			return s.Name + "-" + id, nil
		}
		return v.String()
	}
	arn := func(service, region, account, resource string) string {
		return "arn:" + s.Partition + ":" + service + ":" + region + ":" + account + ":" + resource
	}
	var prop, format string
	switch res.Type {
	case "AWS::DynamoDB::Table":
		prop = "TableName"
		switch attr {
		case "":
			format = "%s"
		case "Arn":
			format = arn("dynamodb", s.Region, s.AccountID, "table/%s")
		case "StreamArn":
			// The real ARN ends in the stream's creation time; StreamTable
			// reads the table back from this one.
			format = arn("dynamodb", s.Region, s.AccountID, "table/%s/stream/"+localStreamLabel)
		}
	case "AWS::SQS::Queue":
		prop = "QueueName"
		switch attr {
		case "", "QueueUrl":
			n, err := name(prop)
			if err != nil {
				return nil, err
			}
			return s.QueueURL(n), nil
		case "Arn":
			format = arn("sqs", s.Region, s.AccountID, "%s")
		case "QueueName":
			format = "%s"
		}
	case "AWS::S3::Bucket":
		prop = "BucketName"
		switch attr {
		case "":
			format = "%s"
		case "Arn":
			format = arn("s3", "", "", "%s")
		}
	case "AWS::Events::EventBus":
		prop = "Name"
		switch attr {
		case "", "Name":
			format = "%s"
		case "Arn":
			format = arn("events", s.Region, s.AccountID, "event-bus/%s")
		}
	case "AWS::Events::Rule":
		prop = "Name"
		switch attr {
		case "":
			format = "%s"
		case "Arn":
			format = arn("events", s.Region, s.AccountID, "rule/%s")
		}
	case "AWS::ApiGatewayV2::Api", "AWS::ApiGatewayV2::Route", "AWS::ApiGatewayV2::Integration",
		"AWS::ApiGatewayV2::Authorizer":
		// Their Ref is an id API Gateway makes; the local stack's is the
		// logical id, lower-cased.
		if attr == "" {
			return strings.ToLower(id), nil
		}
	case "AWS::ApiGatewayV2::Stage":
		prop = "StageName"
		if attr == "" {
			format = "%s"
		}
	case "AWS::Serverless::Function", "AWS::Lambda::Function":
		prop = "FunctionName"
		switch attr {
		case "":
			format = "%s"
		case "Arn":
			format = arn("lambda", s.Region, s.AccountID, "function:%s")
		}
	}
	if format == "" {
		what := "Ref"
		if attr != "" {
			what = "attribute " + attr
		}
		return nil, w.fail(fn, "%s of %s (%s) is not supported by the local runtime", what, id, res.Type)
	}
	n, err := name(prop)
	if err != nil {
		return nil, err
	}
	return fmt.Sprintf(format, n), nil
}

// localStreamLabel ends the stream ARNs the resolver makes, in place of the
// stream's creation time.
const localStreamLabel = "local"

// StreamTable returns the table name in a stream ARN
// (arn:…:table/NAME/stream/LABEL), or "".
func StreamTable(streamARN string) string {
	_, rest, ok := strings.Cut(streamARN, ":table/")
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, "/stream/")
	if !ok {
		return ""
	}
	return name
}

// sub resolves Fn::Sub, "string" or [string, {name: value}].
func (r *Resolver) sub(w *where, arg *yaml.Node) (any, error) {
	const fn = "Fn::Sub"
	var text string
	vars := map[string]*yaml.Node{}
	switch arg.Kind {
	case yaml.ScalarNode:
		text = arg.Value
	case yaml.SequenceNode:
		if len(arg.Content) != 2 || arg.Content[0].Kind != yaml.ScalarNode || arg.Content[1].Kind != yaml.MappingNode {
			return nil, w.fail(fn, "takes a string or [string, {variables}]")
		}
		text = arg.Content[0].Value
		for i := 0; i+1 < len(arg.Content[1].Content); i += 2 {
			vars[arg.Content[1].Content[i].Value] = arg.Content[1].Content[i+1]
		}
	default:
		return nil, w.fail(fn, "takes a string or [string, {variables}]")
	}
	var b strings.Builder
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		b.WriteString(text[:i])
		text = text[i+2:]
		j := strings.Index(text, "}")
		if j < 0 {
			return nil, w.fail(fn, "unterminated ${ in %q", arg.Value)
		}
		name := text[:j]
		text = text[j+1:]
		if strings.HasPrefix(name, "!") { // ${!Literal} is written as ${Literal}
			b.WriteString("${" + name[1:] + "}")
			continue
		}
		var v any
		var err error
		if n, ok := vars[name]; ok {
			v, err = r.resolve(w, n)
		} else if id, attr, ok := strings.Cut(name, "."); ok && !strings.HasPrefix(name, "AWS::") {
			v, err = r.getAtt(w, id, attr)
		} else {
			v, err = r.ref(w, name)
		}
		if err != nil {
			return nil, err
		}
		s, ok := asString(v)
		if !ok {
			return nil, w.fail(fn, "${%s} is not a string", name)
		}
		b.WriteString(s)
	}
}

// evalCondition evaluates a condition expression.
func (r *Resolver) evalCondition(w *where, n *yaml.Node) (bool, error) {
	fn, arg, ok := intrinsic(n, true)
	if !ok {
		v, err := r.resolve(w, n)
		if err != nil {
			return false, err
		}
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return false, w.fail("", "a condition must be a condition function")
	}
	switch fn {
	case "Condition":
		name, err := r.stringArg(w, fn, arg)
		if err != nil {
			return false, err
		}
		return r.Condition(name)
	case "Fn::Equals":
		args, err := r.list(w, fn, arg, 2)
		if err != nil {
			return false, err
		}
		a, err := r.resolve(w, args[0])
		if err != nil {
			return false, err
		}
		b, err := r.resolve(w, args[1])
		if err != nil {
			return false, err
		}
		return fmt.Sprint(a) == fmt.Sprint(b), nil
	case "Fn::Not":
		args, err := r.list(w, fn, arg, 1)
		if err != nil {
			return false, err
		}
		v, err := r.evalCondition(w, args[0])
		return !v, err
	case "Fn::And", "Fn::Or":
		if arg.Kind != yaml.SequenceNode || len(arg.Content) < 2 || len(arg.Content) > 10 {
			return false, w.fail(fn, "takes a list of 2 to 10 conditions")
		}
		and := fn == "Fn::And"
		for _, c := range arg.Content {
			v, err := r.evalCondition(w, c)
			if err != nil {
				return false, err
			}
			if v != and {
				return v, nil
			}
		}
		return and, nil
	case "Fn::If":
		v, err := r.call(w, fn, arg)
		if err != nil {
			return false, err
		}
		if b, ok := v.(bool); ok {
			return b, nil
		}
	}
	return false, w.fail(fn, "not supported in a condition")
}

// asString converts a resolved scalar to its string form.
func asString(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case int64:
		return strconv.FormatInt(v, 10), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
