// Package callrec records the AWS API calls each ferry function makes, so
// that infra/checks/least_privilege.py can compare them with the IAM
// policies infra/template.yaml grants the function.
//
// A Recorder is an aws-sdk-go-v2 middleware. Each call is recorded once per
// distinct (function, source, service, operation, region, resources), as a
// JSON line, before it is sent and whatever its outcome: IAM authorises the
// attempt. Only names are recorded — the service, the operation and the
// input fields that name resources (buckets, keys, tables, indexes, queues,
// secrets, parameters, event buses, streams) — never payloads, item
// attributes, message bodies or secret values.
package callrec

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/smithy-go/middleware"
)

// EnvDir is the environment variable naming the directory a `ferry local`
// process writes its recording to (calls-<pid>.jsonl); recording is off
// when it is unset.
const EnvDir = "FERRY_CALL_LOG_DIR"

// Who made a call on a function's behalf.
const (
	// Handler marks calls made by the function's own code.
	Handler = "handler"
	// EventSource marks calls the Lambda service makes with the function's
	// role for its event source mapping: reading the stream or the queue,
	// deleting handled messages, sending to the on-failure destination.
	EventSource = "event source"
)

// Call is one recorded line.
type Call struct {
	Function  string `json:"function"`
	Source    string `json:"source"` // Handler or EventSource
	Service   string `json:"service"`
	Operation string `json:"operation"`
	Region    string `json:"region"`
	// Resources maps an input field's path (e.g. "Bucket",
	// "TransactItems.Put.TableName", "RequestItems.PutRequest.TableName") to
	// the distinct values it had. A VersionId is recorded as "set", not its
	// value.
	Resources map[string][]string `json:"resources,omitempty"`
}

// Recorder writes each distinct call once. A nil *Recorder records nothing;
// its methods are safe for concurrent use.
type Recorder struct {
	mu   sync.Mutex
	f    *os.File
	seen map[string]bool
}

// Open returns a Recorder writing to dir/calls-<pid>.jsonl, creating dir,
// or nil (recording off) if dir is "".
func Open(dir string) (*Recorder, error) {
	if dir == "" {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("calls-%d.jsonl", os.Getpid())), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	return &Recorder{f: f, seen: map[string]bool{}}, nil
}

// Close closes the file. Lines are written as calls happen, so a process
// that is killed keeps what it recorded.
func (r *Recorder) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// Config returns a copy of cfg whose clients record their calls as made by
// function (a handler name) from source (Handler or EventSource). cfg
// itself is unchanged. With a nil Recorder it returns cfg as is.
func (r *Recorder) Config(cfg aws.Config, function, source string) aws.Config {
	if r == nil {
		return cfg
	}
	c := cfg.Copy()
	c.APIOptions = append(slices.Clone(cfg.APIOptions), r.Middleware(function, source))
	return c
}

// Middleware returns an APIOptions entry recording the client's calls as
// made by function from source.
func (r *Recorder) Middleware(function, source string) func(*middleware.Stack) error {
	return func(stack *middleware.Stack) error {
		return stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ferryCallRecorder",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				r.record(Call{
					Function:  function,
					Source:    source,
					Service:   awsmiddleware.GetServiceID(ctx),
					Operation: awsmiddleware.GetOperationName(ctx),
					Region:    awsmiddleware.GetRegion(ctx),
					Resources: Resources(in.Parameters),
				})
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	}
}

func (r *Recorder) record(c Call) {
	if r == nil {
		return
	}
	line, err := json.Marshal(c) // map keys are sorted, so equal calls marshal equally
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[string(line)] {
		return
	}
	r.seen[string(line)] = true
	_, _ = r.f.Write(append(line, '\n'))
}

// resourceFields are the input fields, at any depth, whose string values
// name resources. Payload fields (Item, Body, MessageBody, SecretString,
// Value, Entries' Detail …) are not among them.
var resourceFields = map[string]bool{
	"Bucket": true, "Key": true, "CopySource": true, "VersionId": true,
	"TableName": true, "IndexName": true,
	"QueueUrl": true, "QueueName": true,
	"SecretId": true, "Name": true, "Names": true, "Path": true,
	"EventBusName": true,
	"StreamArn":    true, "TableArn": true,
}

// requestOps are the per-item operations of DynamoDB's batch requests,
// whose table is the RequestItems map key.
var requestOps = []string{"PutRequest", "DeleteRequest"}

// Resources returns the resource-naming fields of an operation's input
// (see Call.Resources), or nil if it has none.
func Resources(input any) map[string][]string {
	out := map[string][]string{}
	walk(reflect.ValueOf(input), "", out)
	if len(out) == 0 {
		return nil
	}
	for k := range out {
		slices.Sort(out[k])
		out[k] = slices.Compact(out[k])
	}
	return out
}

func walk(v reflect.Value, path string, out map[string][]string) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			fv := v.Field(i)
			p := join(path, f.Name)
			if resourceFields[f.Name] {
				if s, ok := strs(fv); ok {
					if f.Name == "VersionId" && len(s) > 0 {
						s = []string{"set"}
					}
					if len(s) > 0 {
						out[p] = append(out[p], s...)
					}
					continue
				}
			}
			if f.Name == "RequestItems" && fv.Kind() == reflect.Map {
				requestItems(fv, p, out)
				continue
			}
			walk(fv, p, out)
		}
	case reflect.Slice, reflect.Array:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return // bytes are payload
		}
		for i := range v.Len() {
			walk(v.Index(i), path, out)
		}
	}
}

// requestItems records the tables of a BatchWriteItem's or BatchGetItem's
// RequestItems (the map keys), under the kind of each request:
// RequestItems.PutRequest.TableName, RequestItems.DeleteRequest.TableName,
// or RequestItems.TableName for reads.
func requestItems(m reflect.Value, path string, out map[string][]string) {
	iter := m.MapRange()
	for iter.Next() {
		table := iter.Key().String()
		found := false
		v := iter.Value()
		if v.Kind() == reflect.Slice {
			for i := range v.Len() {
				req := reflect.Indirect(v.Index(i))
				if req.Kind() != reflect.Struct {
					continue
				}
				for _, op := range requestOps {
					if f := req.FieldByName(op); f.IsValid() && !f.IsNil() {
						p := join(path, op+".TableName")
						out[p] = append(out[p], table)
						found = true
					}
				}
			}
		}
		if !found {
			p := join(path, "TableName")
			out[p] = append(out[p], table)
		}
	}
}

// strs returns the value of a string, *string or []string field.
func strs(v reflect.Value) ([]string, bool) {
	switch {
	case v.Kind() == reflect.String:
		if v.String() == "" {
			return nil, true
		}
		return []string{v.String()}, true
	case v.Kind() == reflect.Pointer && v.Type().Elem().Kind() == reflect.String:
		if v.IsNil() || v.Elem().String() == "" {
			return nil, true
		}
		return []string{v.Elem().String()}, true
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		var s []string
		for i := range v.Len() {
			s = append(s, v.Index(i).String())
		}
		return s, true
	}
	return nil, false
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
