package resources

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/ferryhq/ferry/infra"
	"github.com/ferryhq/ferry/internal/local/cfn"
)

// Definition is the local stack as infra/template.yaml defines it, resolved
// for one stack (infra/local/stack.json): the resources the local runtime
// creates and the event sources it emulates. Resource types and properties
// the local runtime does not use are left out.
type Definition struct {
	StackName string // the stack's name
	Table     Table  // the event table: the one with a stream
	// Tables are the template's other tables (the live connections').
	Tables  []Table
	Queues  []Queue  // in template order; a dead-letter queue before the queues that use it
	Buckets []Bucket // the template's, then those named by parameters only
	// Bus is the event bus's name.
	Bus       string
	Rules     []Rule
	Functions []Function
	// HTTPAPIs are the template's AWS::Serverless::HttpApi.
	HTTPAPIs []HTTPAPI
	// WebSocketAPIs are the template's AWS::ApiGatewayV2::Api of protocol
	// WEBSOCKET.
	WebSocketAPIs []WebSocketAPI
	// ReceiptRules are the SES receipt rules that store email and invoke
	// a function; ferry local's SMTP listener plays them.
	ReceiptRules []ReceiptRule
	// ids maps logical IDs to physical names.
	ids map[string]string
}

// Table is an AWS::DynamoDB::Table, as the input that creates it locally
// (always on-demand: capacity settings are not emulated).
type Table struct {
	ID    string
	Input *dynamodb.CreateTableInput
}

// Queue is an AWS::SQS::Queue.
type Queue struct {
	ID, Name string
	// Attributes are the queue attributes the template sets
	// (VisibilityTimeout, MessageRetentionPeriod, DelaySeconds,
	// MaximumMessageSize, ReceiveMessageWaitTimeSeconds), as SQS takes them.
	Attributes map[string]string
	// DeadLetter names the redrive target queue, "" for none.
	DeadLetter      string
	MaxReceiveCount int
}

// Bucket is an AWS::S3::Bucket, or a bucket the template is given by a
// parameter and does not create (External), which the local stack creates,
// versioned, because the deployed stack expects it to exist.
type Bucket struct {
	ID, Name      string
	Versioning    bool
	External      bool
	Notifications []Notification
}

// Notification is one queue configuration of a bucket's notifications.
type Notification struct {
	Event          string // e.g. s3:ObjectCreated:*
	Prefix, Suffix string // key filter; "" for none
	Queue          string // the target queue's name
}

// Rule is an AWS::Events::Rule with an EventPattern, with its targets that
// are queues of the template (other targets, and scheduled rules, are not
// emulated).
type Rule struct {
	ID, Name, Bus string
	Pattern       string // the event pattern, JSON
	Enabled       bool
	Queues        []string // target queue names
}

// Function is an AWS::Serverless::Function with the event sources ferry
// local emulates; others (Api, S3, …) are left out.
type Function struct {
	ID, Handler string
	Streams     []StreamSource
	Queues      []QueueSource
	// Schedules names the function's Schedule events. ferry local runs a
	// scheduled function on a ticker of its own interval (the MESH poll
	// interval of the routing file), not at the template's rate.
	Schedules []string
}

// HTTPAPI is an AWS::Serverless::HttpApi's default Lambda authorizer, as
// ferry local's API Gateway emulates it.
type HTTPAPI struct {
	ID string
	// IdentityHeaders are the authorizer's identity sources: a request
	// without one of them is refused before the authorizer sees it, and
	// together they key its cache.
	IdentityHeaders []string
	// AuthorizerTTL is how long an answer is cached (ReauthorizeEvery).
	AuthorizerTTL time.Duration
	// CORS is its CorsConfiguration; nil when it has none.
	CORS *CORS
}

// CORS is an HTTP API's CorsConfiguration.
type CORS struct {
	AllowOrigins, AllowHeaders, AllowMethods, ExposeHeaders []string
	MaxAge                                                  time.Duration
	AllowCredentials                                        bool
}

// WebSocketAPI is a WebSocket API with a REQUEST authorizer on $connect
// and one Lambda integration for its routes, as ferry local emulates it.
type WebSocketAPI struct {
	ID, APIID, Stage string
	// Routes are its route keys.
	Routes []string
	// Handler is the integration's function's Handler; Authorizer the
	// $connect authorizer's.
	Handler, Authorizer string
	// IdentityQuery is the authorizer's identity source, a query parameter
	// (route.request.querystring.NAME).
	IdentityQuery string
	// ConnectARN is the $connect route's execute-api ARN, the authorizer's
	// methodArn.
	ConnectARN string
}

// ReceiptRule is an AWS::SES::ReceiptRule with an S3 action followed by a
// Lambda action, as ferry's is: SES stores each message it receives for
// Recipients in Bucket under Prefix + its message id, then invokes the
// function.
type ReceiptRule struct {
	ID string
	// Recipients are addresses and domains; none means every address.
	Recipients  []string
	TLSRequired bool // TlsPolicy Require
	ScanEnabled bool // spam and virus scanning
	Bucket      string
	Prefix      string
	// Handler is the Handler of the function the Lambda action invokes,
	// FunctionARN its ARN.
	Handler, FunctionARN string
}

// StreamSource is a DynamoDB event of a function, with Lambda's defaults
// filled in.
type StreamSource struct {
	Event            string // the event's name in the template
	Table            string // name of the table whose stream it reads
	StartingPosition string // TRIM_HORIZON or LATEST
	BatchSize        int
	// MaxRetries is MaximumRetryAttempts; RetryForever when the template
	// leaves it at -1 (Lambda's default).
	MaxRetries              int
	BisectOnError           bool
	ParallelizationFactor   int
	ReportBatchItemFailures bool
	OnFailure               string   // the on-failure queue's name, "" for none
	Filters                 []string // FilterCriteria patterns, JSON
}

// RetryForever is StreamSource.MaxRetries for Lambda's -1: retry until the
// record expires from the stream.
const RetryForever = math.MaxInt32

// QueueSource is an SQS event of a function, with Lambda's defaults filled in.
type QueueSource struct {
	Event                   string
	Queue                   string // the queue's name
	BatchSize               int
	ReportBatchItemFailures bool
}

// Template reads the embedded infra/template.yaml for the embedded
// infra/local/stack.json in region.
func Template(region string) (Definition, error) {
	stack, err := cfn.ReadStack(infra.LocalStack, region)
	if err != nil {
		return Definition{}, err
	}
	return FromTemplate(infra.Template, stack)
}

// FromTemplate reads a definition from a template for a stack. It fails if
// the template has no table, or more than one table or event bus, or if a
// property it reads cannot be resolved (a *cfn.Error says where).
func FromTemplate(template []byte, stack cfn.Stack) (Definition, error) {
	t, err := cfn.Parse(template)
	if err != nil {
		return Definition{}, err
	}
	r, err := cfn.NewResolver(t, stack)
	if err != nil {
		return Definition{}, err
	}
	d := Definition{StackName: stack.Name, ids: map[string]string{}}
	x := extractor{r: r, d: &d, arns: map[string]string{}}
	for _, step := range []func() error{x.queues, x.table, x.buckets, x.bus, x.rules, x.functions, x.httpAPIs, x.webSocketAPIs, x.receiptRules} {
		if err := step(); err != nil {
			return Definition{}, err
		}
	}
	return d, nil
}

// Name returns the physical name of the resource with logical ID id, or "".
func (d Definition) Name(id string) string { return d.ids[id] }

// Queue returns the queue named name.
func (d Definition) Queue(name string) (Queue, bool) {
	i := slices.IndexFunc(d.Queues, func(q Queue) bool { return q.Name == name })
	if i < 0 {
		return Queue{}, false
	}
	return d.Queues[i], true
}

// Function returns the function whose Handler is handler.
func (d Definition) Function(handler string) (Function, bool) {
	i := slices.IndexFunc(d.Functions, func(f Function) bool { return f.Handler == handler })
	if i < 0 {
		return Function{}, false
	}
	return d.Functions[i], true
}

type extractor struct {
	r    *cfn.Resolver
	d    *Definition
	arns map[string]string // queue ARN → name, function ARN → Handler
}

// enabled lists the resources of typ whose condition holds.
func (x extractor) enabled(typ string) ([]string, error) {
	var ids []string
	for _, id := range x.r.Template().OfType(typ) {
		on, err := x.r.Enabled(id)
		if err != nil {
			return nil, err
		}
		if on {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (x extractor) queues() error {
	ids, err := x.enabled("AWS::SQS::Queue")
	if err != nil {
		return err
	}
	for _, id := range ids {
		name, err := x.r.Attribute(id, "QueueName")
		if err != nil {
			return err
		}
		arn, err := x.r.Attribute(id, "Arn")
		if err != nil {
			return err
		}
		x.arns[arn] = name
		x.d.ids[id] = name
		q := Queue{ID: id, Name: name, Attributes: map[string]string{}}
		for _, a := range []string{"VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds"} {
			v := x.r.Property(id, a)
			if !v.Exists() {
				continue
			}
			n, err := v.Int()
			if err != nil {
				return err
			}
			q.Attributes[a] = fmt.Sprint(n)
		}
		if rp := x.r.Property(id, "RedrivePolicy"); rp.Exists() {
			target := rp.Get("deadLetterTargetArn")
			if q.DeadLetter, err = x.queueByARN(target); err != nil {
				return err
			}
			n, err := rp.Get("maxReceiveCount").Int()
			if err != nil {
				return err
			}
			q.MaxReceiveCount = int(n)
		}
		x.d.Queues = append(x.d.Queues, q)
	}
	// Create dead-letter queues before the queues that name them.
	slices.SortStableFunc(x.d.Queues, func(a, b Queue) int {
		return boolInt(a.DeadLetter != "") - boolInt(b.DeadLetter != "")
	})
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// queueByARN returns the name of the template's queue whose ARN v holds.
func (x extractor) queueByARN(v cfn.Value) (string, error) {
	arn, err := v.String()
	if err != nil {
		return "", err
	}
	name, ok := x.arns[arn]
	if !ok {
		return "", v.Fail(fmt.Sprintf("%q is not the ARN of a queue of the template", arn))
	}
	return name, nil
}

func (x extractor) table() error {
	ids, err := x.enabled("AWS::DynamoDB::Table")
	if err != nil {
		return err
	}
	for _, id := range ids {
		t, err := x.tableInput(id)
		if err != nil {
			return err
		}
		if t.Input.StreamSpecification == nil {
			x.d.Tables = append(x.d.Tables, t)
			continue
		}
		if x.d.Table.Input != nil {
			return fmt.Errorf("template: the local runtime needs one table with a stream, the event table; %s and %s have one", x.d.Table.ID, id)
		}
		x.d.Table = t
	}
	if x.d.Table.Input == nil {
		return fmt.Errorf("template: no AWS::DynamoDB::Table with a stream (the event table)")
	}
	return nil
}

func (x extractor) tableInput(id string) (Table, error) {
	name, err := x.r.Ref(id)
	if err != nil {
		return Table{}, err
	}
	x.d.ids[id] = name
	in := &dynamodb.CreateTableInput{TableName: aws.String(name), BillingMode: types.BillingModePayPerRequest}
	n, err := x.r.Property(id, "AttributeDefinitions").Len()
	if err != nil {
		return Table{}, err
	}
	for i := range n {
		a := x.r.Property(id, "AttributeDefinitions").Index(i)
		an, err := a.Get("AttributeName").String()
		if err != nil {
			return Table{}, err
		}
		at, err := a.Get("AttributeType").String()
		if err != nil {
			return Table{}, err
		}
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(an), AttributeType: types.ScalarAttributeType(at)})
	}
	if in.KeySchema, err = keySchema(x.r.Property(id, "KeySchema")); err != nil {
		return Table{}, err
	}
	gsis := x.r.Property(id, "GlobalSecondaryIndexes")
	if n, err = gsis.Len(); err != nil {
		return Table{}, err
	}
	for i := range n {
		g := gsis.Index(i)
		name, err := g.Get("IndexName").String()
		if err != nil {
			return Table{}, err
		}
		ks, err := keySchema(g.Get("KeySchema"))
		if err != nil {
			return Table{}, err
		}
		pt, err := g.Get("Projection", "ProjectionType").String()
		if err != nil {
			return Table{}, err
		}
		nk, err := g.Get("Projection", "NonKeyAttributes").Strings()
		if err != nil {
			return Table{}, err
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName:  aws.String(name),
			KeySchema:  ks,
			Projection: &types.Projection{ProjectionType: types.ProjectionType(pt), NonKeyAttributes: nk},
		})
	}
	if vt := x.r.Property(id, "StreamSpecification", "StreamViewType"); vt.Exists() {
		s, err := vt.String()
		if err != nil {
			return Table{}, err
		}
		in.StreamSpecification = &types.StreamSpecification{StreamEnabled: aws.Bool(true), StreamViewType: types.StreamViewType(s)}
	}
	return Table{ID: id, Input: in}, nil
}

func keySchema(v cfn.Value) ([]types.KeySchemaElement, error) {
	n, err := v.Len()
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, v.Fail("no key schema")
	}
	var ks []types.KeySchemaElement
	for i := range n {
		an, err := v.Index(i).Get("AttributeName").String()
		if err != nil {
			return nil, err
		}
		kt, err := v.Index(i).Get("KeyType").String()
		if err != nil {
			return nil, err
		}
		ks = append(ks, types.KeySchemaElement{AttributeName: aws.String(an), KeyType: types.KeyType(kt)})
	}
	return ks, nil
}

func (x extractor) buckets() error {
	ids, err := x.enabled("AWS::S3::Bucket")
	if err != nil {
		return err
	}
	created := map[string]bool{}
	for _, id := range ids {
		name, err := x.r.Ref(id)
		if err != nil {
			return err
		}
		x.d.ids[id] = name
		created[name] = true
		b := Bucket{ID: id, Name: name}
		status, err := x.r.Property(id, "VersioningConfiguration", "Status").String()
		if err != nil {
			return err
		}
		b.Versioning = status == "Enabled"
		qcs := x.r.Property(id, "NotificationConfiguration", "QueueConfigurations")
		n, err := qcs.Len()
		if err != nil {
			return err
		}
		for i := range n {
			qc := qcs.Index(i)
			var nt Notification
			if nt.Event, err = qc.Get("Event").String(); err != nil {
				return err
			}
			if nt.Queue, err = x.queueByARN(qc.Get("Queue")); err != nil {
				return err
			}
			rules := qc.Get("Filter", "S3Key", "Rules")
			m, err := rules.Len()
			if err != nil {
				return err
			}
			for j := range m {
				rn, err := rules.Index(j).Get("Name").String()
				if err != nil {
					return err
				}
				rv, err := rules.Index(j).Get("Value").String()
				if err != nil {
					return err
				}
				switch strings.ToLower(rn) {
				case "prefix":
					nt.Prefix = rv
				case "suffix":
					nt.Suffix = rv
				default:
					return rules.Index(j).Get("Name").Fail(fmt.Sprintf("filter rule %q is neither prefix nor suffix", rn))
				}
			}
			b.Notifications = append(b.Notifications, nt)
		}
		x.d.Buckets = append(x.d.Buckets, b)
	}
	// Buckets the stack is given by a parameter (…BucketName) but does not
	// create are the user's in AWS; locally someone has to create them.
	t := x.r.Template()
	params := make([]string, 0, len(t.Parameters))
	for p := range t.Parameters {
		params = append(params, p)
	}
	slices.Sort(params)
	for _, p := range params {
		if !strings.HasSuffix(p, "BucketName") {
			continue
		}
		name, err := x.r.Ref(p)
		if err != nil {
			return err
		}
		if name == "" || created[name] {
			continue
		}
		created[name] = true
		x.d.ids[p] = name
		x.d.Buckets = append(x.d.Buckets, Bucket{ID: p, Name: name, Versioning: true, External: true})
	}
	return nil
}

func (x extractor) bus() error {
	ids, err := x.enabled("AWS::Events::EventBus")
	if err != nil {
		return err
	}
	if len(ids) > 1 {
		return fmt.Errorf("template: the local runtime supports one AWS::Events::EventBus, found %d", len(ids))
	}
	if len(ids) == 1 {
		if x.d.Bus, err = x.r.Ref(ids[0]); err != nil {
			return err
		}
		x.d.ids[ids[0]] = x.d.Bus
	}
	return nil
}

func (x extractor) rules() error {
	ids, err := x.enabled("AWS::Events::Rule")
	if err != nil {
		return err
	}
	for _, id := range ids {
		pattern := x.r.Property(id, "EventPattern")
		if !pattern.Exists() {
			continue // a scheduled rule: not emulated
		}
		name, err := x.r.Ref(id)
		if err != nil {
			return err
		}
		rule := Rule{ID: id, Name: name, Bus: "default", Enabled: true}
		if bus := x.r.Property(id, "EventBusName"); bus.Exists() {
			s, err := bus.String()
			if err != nil {
				return err
			}
			if i := strings.LastIndex(s, ":event-bus/"); i >= 0 { // an ARN
				s = s[i+len(":event-bus/"):]
			}
			rule.Bus = s
		}
		if state, err := x.r.Property(id, "State").String(); err != nil {
			return err
		} else if state != "" && state != "ENABLED" {
			rule.Enabled = false
		}
		p, err := pattern.Any()
		if err != nil {
			return err
		}
		if s, ok := p.(string); ok {
			rule.Pattern = s
		} else {
			b, err := json.Marshal(p)
			if err != nil {
				return pattern.Fail(err.Error())
			}
			rule.Pattern = string(b)
		}
		targets := x.r.Property(id, "Targets")
		n, err := targets.Len()
		if err != nil {
			return err
		}
		for i := range n {
			// Only targets that are the template's queues are emulated; a
			// target the resolver cannot resolve (an imported topic, say)
			// is none of them.
			arn, err := targets.Index(i).Get("Arn").String()
			var unresolved *cfn.Error
			if errors.As(err, &unresolved) {
				continue
			}
			if err != nil {
				return err
			}
			if q, ok := x.arns[arn]; ok {
				rule.Queues = append(rule.Queues, q)
			}
		}
		x.d.Rules = append(x.d.Rules, rule)
	}
	return nil
}

func (x extractor) functions() error {
	ids, err := x.enabled("AWS::Serverless::Function")
	if err != nil {
		return err
	}
	for _, id := range ids {
		h, err := x.r.Property(id, "Handler").String()
		if err != nil {
			return err
		}
		f := Function{ID: id, Handler: h}
		arn, err := x.r.Attribute(id, "Arn")
		if err != nil {
			return err
		}
		x.arns[arn] = h
		evs := x.r.Property(id, "Events")
		names, err := evs.Keys()
		if err != nil {
			return err
		}
		for _, ev := range names {
			typ, err := evs.Get(ev, "Type").String()
			if err != nil {
				return err
			}
			p := evs.Get(ev, "Properties")
			switch typ {
			case "DynamoDB":
				s, err := x.streamSource(ev, p)
				if err != nil {
					return err
				}
				f.Streams = append(f.Streams, s)
			case "SQS":
				q := QueueSource{Event: ev}
				if q.Queue, err = x.queueByARN(p.Get("Queue")); err != nil {
					return err
				}
				if q.BatchSize, err = intOr(p.Get("BatchSize"), 10); err != nil {
					return err
				}
				if q.ReportBatchItemFailures, err = reportsItemFailures(p); err != nil {
					return err
				}
				f.Queues = append(f.Queues, q)
			case "Schedule", "ScheduleV2":
				if enabled := p.Get("Enabled"); enabled.Exists() {
					on, err := enabled.Bool()
					if err != nil {
						return err
					}
					if !on {
						continue
					}
				}
				f.Schedules = append(f.Schedules, ev)
			}
		}
		x.d.Functions = append(x.d.Functions, f)
	}
	return nil
}

func (x extractor) httpAPIs() error {
	ids, err := x.enabled("AWS::Serverless::HttpApi")
	if err != nil {
		return err
	}
	for _, id := range ids {
		auth := x.r.Property(id, "Auth")
		name, err := auth.Get("DefaultAuthorizer").String()
		if err != nil {
			return err
		}
		a := auth.Get("Authorizers", name)
		api := HTTPAPI{ID: id}
		if api.IdentityHeaders, err = a.Get("Identity", "Headers").Strings(); err != nil {
			return err
		}
		ttl, err := intOr(a.Get("Identity", "ReauthorizeEvery"), 300) // SAM's default
		if err != nil {
			return err
		}
		api.AuthorizerTTL = time.Duration(ttl) * time.Second
		if api.CORS, err = corsOf(x.r.Property(id, "CorsConfiguration")); err != nil {
			return err
		}
		x.d.HTTPAPIs = append(x.d.HTTPAPIs, api)
	}
	return nil
}

// corsOf reads an HttpApi's CorsConfiguration (the object form), nil when
// it has none.
func corsOf(v cfn.Value) (*CORS, error) {
	if !v.Exists() {
		return nil, nil
	}
	c := &CORS{}
	for _, f := range []struct {
		name string
		to   *[]string
	}{{"AllowOrigins", &c.AllowOrigins}, {"AllowHeaders", &c.AllowHeaders}, {"AllowMethods", &c.AllowMethods}, {"ExposeHeaders", &c.ExposeHeaders}} {
		if p := v.Get(f.name); p.Exists() {
			var err error
			if *f.to, err = p.Strings(); err != nil {
				return nil, err
			}
		}
	}
	age, err := intOr(v.Get("MaxAge"), 0)
	if err != nil {
		return nil, err
	}
	c.MaxAge = time.Duration(age) * time.Second
	if p := v.Get("AllowCredentials"); p.Exists() {
		if c.AllowCredentials, err = p.Bool(); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (x extractor) webSocketAPIs() error {
	apis, err := x.enabled("AWS::ApiGatewayV2::Api")
	if err != nil {
		return err
	}
	of := func(typ, api string) ([]string, error) {
		ids, err := x.enabled(typ)
		if err != nil {
			return nil, err
		}
		var out []string
		for _, id := range ids {
			if a, err := x.r.Property(id, "ApiId").String(); err != nil {
				return nil, err
			} else if a == api {
				out = append(out, id)
			}
		}
		return out, nil
	}
	// handlerOf finds the function whose ARN an integration or authorizer
	// URI (arn:…:apigateway:…:lambda:path/2015-03-31/functions/ARN/invocations) holds.
	handlerOf := func(v cfn.Value) (string, error) {
		uri, err := v.String()
		if err != nil {
			return "", err
		}
		for _, f := range x.d.Functions {
			if arn, err := x.r.Attribute(f.ID, "Arn"); err == nil && strings.Contains(uri, "/functions/"+arn+"/") {
				return f.Handler, nil
			}
		}
		return "", v.Fail("not the invocation URI of a function of the template")
	}
	for _, id := range apis {
		if p, err := x.r.Property(id, "ProtocolType").String(); err != nil || p != "WEBSOCKET" {
			if err != nil {
				return err
			}
			continue
		}
		api := WebSocketAPI{ID: id}
		if api.APIID, err = x.r.Ref(id); err != nil {
			return err
		}
		routes, err := of("AWS::ApiGatewayV2::Route", api.APIID)
		if err != nil {
			return err
		}
		for _, r := range routes {
			key, err := x.r.Property(r, "RouteKey").String()
			if err != nil {
				return err
			}
			api.Routes = append(api.Routes, key)
		}
		integrations, err := of("AWS::ApiGatewayV2::Integration", api.APIID)
		if err != nil {
			return err
		}
		auths, err := of("AWS::ApiGatewayV2::Authorizer", api.APIID)
		if err != nil {
			return err
		}
		stages, err := of("AWS::ApiGatewayV2::Stage", api.APIID)
		if err != nil {
			return err
		}
		if len(integrations) != 1 || len(auths) != 1 || len(stages) != 1 {
			return fmt.Errorf("template: WebSocket API %s: the local runtime emulates one integration, one authorizer and one stage; it has %d, %d and %d", id, len(integrations), len(auths), len(stages))
		}
		if api.Handler, err = handlerOf(x.r.Property(integrations[0], "IntegrationUri")); err != nil {
			return err
		}
		if api.Authorizer, err = handlerOf(x.r.Property(auths[0], "AuthorizerUri")); err != nil {
			return err
		}
		sources, err := x.r.Property(auths[0], "IdentitySource").Strings()
		if err != nil {
			return err
		}
		q, ok := "", len(sources) == 1
		if ok {
			q, ok = strings.CutPrefix(sources[0], "route.request.querystring.")
		}
		if !ok {
			return x.r.Property(auths[0], "IdentitySource").Fail("the local runtime emulates one query parameter as the identity source")
		}
		api.IdentityQuery = q
		if api.Stage, err = x.r.Property(stages[0], "StageName").String(); err != nil {
			return err
		}
		var pseudo []any
		for _, p := range []string{"AWS::Partition", "AWS::Region", "AWS::AccountId"} {
			v, err := x.r.Ref(p)
			if err != nil {
				return err
			}
			pseudo = append(pseudo, v)
		}
		api.ConnectARN = fmt.Sprintf("arn:%s:execute-api:%s:%s:%s/%s/$connect", append(pseudo, api.APIID, api.Stage)...)
		x.d.WebSocketAPIs = append(x.d.WebSocketAPIs, api)
	}
	return nil
}

func (x extractor) streamSource(ev string, p cfn.Value) (StreamSource, error) {
	s := StreamSource{Event: ev}
	stream := p.Get("Stream")
	arn, err := stream.String()
	if err != nil {
		return s, err
	}
	if s.Table = cfn.StreamTable(arn); s.Table == "" || s.Table != aws.ToString(x.d.Table.Input.TableName) {
		return s, stream.Fail(fmt.Sprintf("%q is not the stream of the template's table", arn))
	}
	if s.StartingPosition, err = p.Get("StartingPosition").String(); err != nil {
		return s, err
	}
	if s.StartingPosition != "TRIM_HORIZON" && s.StartingPosition != "LATEST" {
		return s, p.Get("StartingPosition").Fail(fmt.Sprintf("starting position %q is not TRIM_HORIZON or LATEST", s.StartingPosition))
	}
	if s.BatchSize, err = intOr(p.Get("BatchSize"), 100); err != nil {
		return s, err
	}
	if s.MaxRetries, err = intOr(p.Get("MaximumRetryAttempts"), -1); err != nil {
		return s, err
	}
	if s.MaxRetries < 0 {
		s.MaxRetries = RetryForever
	}
	if s.BisectOnError, err = p.Get("BisectBatchOnFunctionError").Bool(); err != nil {
		return s, err
	}
	if s.ParallelizationFactor, err = intOr(p.Get("ParallelizationFactor"), 1); err != nil {
		return s, err
	}
	if s.ReportBatchItemFailures, err = reportsItemFailures(p); err != nil {
		return s, err
	}
	if dest := p.Get("DestinationConfig", "OnFailure", "Destination"); dest.Exists() {
		if s.OnFailure, err = x.queueByARN(dest); err != nil {
			return s, err
		}
	}
	filters := p.Get("FilterCriteria", "Filters")
	n, err := filters.Len()
	if err != nil {
		return s, err
	}
	for i := range n {
		pat := filters.Index(i).Get("Pattern")
		v, err := pat.Any()
		if err != nil {
			return s, err
		}
		str, ok := v.(string)
		if !ok {
			return s, pat.Fail("a filter pattern is a JSON string")
		}
		s.Filters = append(s.Filters, str)
	}
	return s, nil
}

func intOr(v cfn.Value, def int) (int, error) {
	if !v.Exists() {
		return def, nil
	}
	n, err := v.Int()
	return int(n), err
}

func reportsItemFailures(p cfn.Value) (bool, error) {
	types, err := p.Get("FunctionResponseTypes").Strings()
	if err != nil {
		return false, err
	}
	return slices.Contains(types, "ReportBatchItemFailures"), nil
}

func (x extractor) receiptRules() error {
	ids, err := x.enabled("AWS::SES::ReceiptRule")
	if err != nil {
		return err
	}
	for _, id := range ids {
		rule := ReceiptRule{ID: id}
		recipients, err := x.r.Property(id, "Rule", "Recipients").Strings()
		if err != nil {
			return err
		}
		for _, r := range recipients {
			if r = strings.TrimSpace(r); r != "" {
				rule.Recipients = append(rule.Recipients, r)
			}
		}
		tls, err := x.r.Property(id, "Rule", "TlsPolicy").String()
		if err != nil {
			return err
		}
		rule.TLSRequired = tls == "Require"
		if scan := x.r.Property(id, "Rule", "ScanEnabled"); scan.Exists() {
			if rule.ScanEnabled, err = scan.Bool(); err != nil {
				return err
			}
		}
		actions := x.r.Property(id, "Rule", "Actions")
		n, err := actions.Len()
		if err != nil {
			return err
		}
		for i := range n {
			a := actions.Index(i)
			if s3 := a.Get("S3Action"); s3.Exists() {
				if rule.Bucket, err = s3.Get("BucketName").String(); err != nil {
					return err
				}
				if rule.Prefix, err = s3.Get("ObjectKeyPrefix").String(); err != nil {
					return err
				}
			}
			if l := a.Get("LambdaAction"); l.Exists() {
				arn, err := l.Get("FunctionArn").String()
				if err != nil {
					return err
				}
				h, ok := x.arns[arn]
				if !ok {
					return l.Get("FunctionArn").Fail(fmt.Sprintf("%q is not the ARN of a function of the template", arn))
				}
				rule.Handler, rule.FunctionARN = h, arn
			}
		}
		if rule.Bucket == "" || rule.Handler == "" {
			return actions.Fail("the local runtime plays a receipt rule with an S3 action and a Lambda action")
		}
		x.d.ReceiptRules = append(x.d.ReceiptRules, rule)
	}
	return nil
}
