// Package cfn reads a CloudFormation (or SAM) template the way the local
// runtime needs it: its parameters, conditions and resources, with the
// intrinsic functions of the properties it reads resolved against a Stack
// (stack name, region, account and parameter values).
//
// Resolution is lazy: only the properties a caller asks for are resolved, so
// a template may hold resource types, properties and intrinsics the local
// runtime does not understand, as long as it does not read them. A property
// that is read but cannot be resolved fails with an *Error naming the
// resource, the property path and the function.
//
// Supported: Ref (parameters, pseudo parameters, resources), Fn::Sub (both
// forms), Fn::GetAtt, Fn::If with the template's Conditions (Fn::Equals,
// Fn::Not, Fn::And, Fn::Or, Condition), Fn::Join, Fn::Select and Fn::Split,
// in their long form and as YAML short tags (!Ref, !Sub, …).
package cfn

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// Template is a parsed template. Its maps are keyed by logical ID (or
// parameter and condition name).
type Template struct {
	Parameters map[string]Parameter
	Conditions map[string]*yaml.Node
	Resources  map[string]Resource
	// Globals is SAM's Globals section (nil if absent), whose Function
	// properties apply to every AWS::Serverless::Function.
	Globals *yaml.Node
	// Order lists the resources' logical IDs in template order.
	Order []string
}

// Parameter is a template parameter.
type Parameter struct {
	Type    string
	Default *string // nil when the parameter has none
}

// Resource is one entry of the template's Resources section, unresolved.
type Resource struct {
	ID         string
	Type       string
	Condition  string     // "" when the resource is unconditional
	Properties *yaml.Node // nil when it has none
}

// Parse parses a template in YAML (or JSON). It checks the shape of the
// sections it reads and nothing of the resources' properties.
func Parse(data []byte) (*Template, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("template: not a YAML mapping")
	}
	t := &Template{Parameters: map[string]Parameter{}, Conditions: map[string]*yaml.Node{}, Resources: map[string]Resource{}}
	root := doc.Content[0]
	for i := 0; i+1 < len(root.Content); i += 2 {
		key, val := root.Content[i].Value, root.Content[i+1]
		switch key {
		case "Parameters":
			if err := eachEntry(val, "Parameters", func(name string, n *yaml.Node) error {
				p := Parameter{Type: scalarOf(n, "Type")}
				if d := child(n, "Default"); d != nil {
					if d.Kind != yaml.ScalarNode {
						return fmt.Errorf("template: parameter %s: Default is not a scalar", name)
					}
					p.Default = &d.Value
				}
				t.Parameters[name] = p
				return nil
			}); err != nil {
				return nil, err
			}
		case "Conditions":
			if err := eachEntry(val, "Conditions", func(name string, n *yaml.Node) error {
				t.Conditions[name] = n
				return nil
			}); err != nil {
				return nil, err
			}
		case "Globals":
			t.Globals = val
		case "Resources":
			if err := eachEntry(val, "Resources", func(id string, n *yaml.Node) error {
				r := Resource{ID: id, Type: scalarOf(n, "Type"), Condition: scalarOf(n, "Condition"), Properties: child(n, "Properties")}
				if r.Type == "" {
					return fmt.Errorf("template: resource %s has no Type", id)
				}
				t.Resources[id] = r
				t.Order = append(t.Order, id)
				return nil
			}); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// OfType returns the logical IDs of the resources of type typ, in template
// order.
func (t *Template) OfType(typ string) []string {
	var ids []string
	for _, id := range t.Order {
		if t.Resources[id].Type == typ {
			ids = append(ids, id)
		}
	}
	return ids
}

func eachEntry(n *yaml.Node, section string, f func(string, *yaml.Node) error) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("template: %s is not a mapping", section)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if err := f(n.Content[i].Value, n.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

// child returns the value of key in the mapping n, or nil.
func child(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func scalarOf(n *yaml.Node, key string) string {
	if c := child(n, key); c != nil && c.Kind == yaml.ScalarNode {
		return c.Value
	}
	return ""
}

// Stack is what a template is resolved against: the values CloudFormation
// would know when creating the stack.
type Stack struct {
	Name      string // AWS::StackName (required)
	Region    string // AWS::Region (required)
	AccountID string // AWS::AccountId (required)
	Partition string // AWS::Partition; default "aws"
	URLSuffix string // AWS::URLSuffix; default "amazonaws.com"
	// Parameters are the parameter values; a parameter without one takes
	// its Default.
	Parameters map[string]string
	// QueueURL returns the URL of a queue (what Ref of an AWS::SQS::Queue
	// returns); default https://sqs.REGION.URLSUFFIX/ACCOUNT/NAME.
	QueueURL func(name string) string
}

// localStack is the layout of infra/local/stack.json.
type localStack struct {
	StackName  string            `json:"stackName"`
	AccountID  string            `json:"accountId"`
	Parameters map[string]string `json:"parameters"`
}

// ReadStack reads a stack file (infra/local/stack.json: stackName, accountId
// and parameters) for the given region.
func ReadStack(data []byte, region string) (Stack, error) {
	var ls localStack
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ls); err != nil {
		return Stack{}, fmt.Errorf("stack file: %w", err)
	}
	s := Stack{Name: ls.StackName, Region: region, AccountID: ls.AccountID, Parameters: ls.Parameters}
	return s, s.Validate()
}

// Validate reports every missing field of s at once.
func (s Stack) Validate() error {
	var errs []error
	if s.Name == "" {
		errs = append(errs, errors.New("stack name is required"))
	}
	if s.Region == "" {
		errs = append(errs, errors.New("region is required"))
	}
	if s.AccountID == "" {
		errs = append(errs, errors.New("account ID is required"))
	}
	return errors.Join(errs...)
}

func (s Stack) withDefaults() Stack {
	if s.Partition == "" {
		s.Partition = "aws"
	}
	if s.URLSuffix == "" {
		s.URLSuffix = "amazonaws.com"
	}
	if s.QueueURL == nil {
		region, suffix, account := s.Region, s.URLSuffix, s.AccountID
		s.QueueURL = func(name string) string {
			return "https://sqs." + region + "." + suffix + "/" + account + "/" + name
		}
	}
	return s
}
