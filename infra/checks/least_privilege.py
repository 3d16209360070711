#!/usr/bin/env python3
"""Checks that each Lambda of infra/template.yaml is granted what it uses, and no more.

It compares the AWS calls each function made in recorded runs of `ferry local`
(internal/local/callrec writes them as JSON lines, one calls-<pid>.jsonl per process,
when FERRY_CALL_LOG_DIR is set) with the IAM policies SAM gives the function's role:

  * every call must be allowed by some statement;
  * every action and every resource entry of every statement must be used by some call;
  * no statement may have a wildcard action ("*", "service:*") or Resource "*";

unless the statement is justified: a comment in the template, inside the function's or its role's
resource (or before `Resources:`, for every function), of the form

    # least-privilege: <Sid>: <reason>

excuses that statement's unused and wildcard findings (never a call that nothing
allows). The managed policies SAM attaches for event sources are judged too, under
their policy names as Sids (AWSLambdaBasicExecutionRole, …). Conditions are ignored
(the output says where); Deny, NotAction and NotResource are errors.

Calls on resources only the tests use (infra/checks/test-only-resources.txt), and calls
the local emulation of event source mappings makes that Lambda's do not, are listed as
ignored rather than judged.

Usage:
  least_privilege.py [--template T] [--stack S] [--allow-unused] [--output F] RECORDING...

RECORDING is a calls-*.jsonl file or a directory of them. Exit status: 0 if every
function passes, 1 if any fails, 2 on an error (unknown operation, unresolvable
intrinsic, bad input).
"""

import argparse
import copy
import glob
import json
import os
import re
import sys
from collections import defaultdict
from urllib.parse import unquote, urlparse

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The managed policies SAM attaches to a function's role for its event sources,
# as AWS publishes them (default versions, v1, as of 2026: `aws iam get-policy-version`).
MANAGED = {
    "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole": [
        {"Effect": "Allow", "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaDynamoDBExecutionRole": [
        {"Effect": "Allow", "Action": [
            "dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams",
            "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
    "arn:aws:iam::aws:policy/service-role/AWSLambdaSQSQueueExecutionRole": [
        {"Effect": "Allow", "Action": [
            "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes",
            "logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"], "Resource": "*"},
    ],
}

# The calls Lambda's event source mappings make with the function's role. The local
# emulation (internal/local/esm) makes others too (it changes a failed message's
# visibility to retry it sooner); those are not the function's and are only listed.
LAMBDA_ESM = {
    "DynamoDB Streams": {"DescribeStream", "GetShardIterator", "GetRecords", "ListStreams"},
    "SQS": {"ReceiveMessage", "DeleteMessage", "DeleteMessageBatch", "GetQueueAttributes",
            "SendMessage", "SendMessageBatch"},
}

JUSTIFY = re.compile(r"#\s*least-privilege:\s*([A-Za-z0-9_.-]+)\s*:\s*(.*\S)")


# NO_VALUE is what Ref AWS::NoValue resolves to: the list item or property
# holding it is left out.
NO_VALUE = object()


class CheckError(Exception):
    """A problem with the inputs, not a least-privilege finding."""


# ---------------------------------------------------------------- template


def load_template(path):
    """Returns the template as plain dicts and lists (YAML short tags decoded)."""
    from cfnlint.decode import decode

    tpl, matches = decode(path)
    if tpl is None or matches:
        raise CheckError(f"{path}: cannot parse: {'; '.join(str(m) for m in matches)}")
    return json.loads(json.dumps(tpl))


def translate(tpl, params, region):
    """Expands the SAM template into CloudFormation as `sam deploy` would."""
    os.environ["AWS_DEFAULT_REGION"] = region
    from samtranslator.translator.transform import transform

    class NoManagedPolicies:
        # Policies that name a managed policy keep its ARN; none is looked up.
        def load(self):
            return {}

    tpl = copy.deepcopy(tpl)
    placeholder = "s3://least-privilege-placeholder/code.zip"
    if isinstance(tpl.get("Globals", {}).get("Function", {}).get("CodeUri"), str):
        tpl["Globals"]["Function"]["CodeUri"] = placeholder
    for r in tpl.get("Resources", {}).values():
        if r.get("Type") == "AWS::Serverless::Function" and isinstance(r.get("Properties", {}).get("CodeUri"), str):
            r["Properties"]["CodeUri"] = placeholder
    return transform(tpl, params, NoManagedPolicies())


def justifications(path):
    """Returns {(function or None, Sid): reason} from the template's comments."""
    out = {}
    current, in_resources = None, False
    with open(path) as f:
        for line in f:
            if re.match(r"^Resources:\s*$", line):
                in_resources = True
                continue
            if re.match(r"^\S", line) and not line.startswith("#"):
                in_resources = line.startswith("Resources:")
                current = None
            m = re.match(r"^  ([A-Za-z0-9]+):", line)
            if in_resources and m:
                current = m.group(1)
            j = JUSTIFY.search(line)
            if j:
                out[(current if in_resources else None, j.group(1))] = j.group(2)
    return out


# ---------------------------------------------------------------- intrinsics


class Resolver:
    """Resolves the intrinsic functions IAM policies use, for one stack."""

    def __init__(self, cfn, stack, params, region):
        self.resources = cfn.get("Resources", {})
        self.region, self.account = region, stack["accountId"]
        self.values = {"AWS::Region": region, "AWS::AccountId": self.account, "AWS::Partition": "aws",
                       "AWS::StackName": stack["stackName"], "AWS::URLSuffix": "amazonaws.com",
                       "AWS::StackId": f"arn:aws:cloudformation:{region}:{self.account}:stack/{stack['stackName']}/id"}
        for name, p in cfn.get("Parameters", {}).items():
            if name in params:
                self.values[name] = params[name]
            elif "Default" in p:
                self.values[name] = p["Default"]
        self.conditions = cfn.get("Conditions", {})

    def __call__(self, v, where):
        if isinstance(v, list):
            return [r for r in (self(x, where) for x in v) if r is not NO_VALUE]
        if not isinstance(v, dict):
            return v
        if len(v) != 1:
            return {k: r for k, r in ((k, self(x, f"{where}.{k}")) for k, x in v.items()) if r is not NO_VALUE}
        (fn, arg), = v.items()
        if fn == "Ref":
            if arg == "AWS::NoValue":
                return NO_VALUE
            return self.ref(arg, where)
        if fn == "Fn::Sub":
            return self.sub(arg, where)
        if fn == "Fn::GetAtt":
            name, attr = arg.split(".", 1) if isinstance(arg, str) else arg
            return self.getatt(name, attr, where)
        if fn == "Fn::Join":
            sep, items = arg
            return sep.join(str(x) for x in self(items, where))
        if fn == "Fn::Select":
            i, items = self(arg, where)
            return items[int(i)]
        if fn == "Fn::Split":
            sep, s = self(arg, where)
            return s.split(sep)
        if fn == "Fn::If":
            cond, yes, no = arg
            return self(yes if self.condition(cond, where) else no, where)
        if fn.startswith("Fn::") or fn == "Condition":
            raise CheckError(f"{where}: cannot resolve {fn}")
        return {fn: self(arg, f"{where}.{fn}")}

    def condition(self, name, where):
        c = self.conditions.get(name)
        if c is None:
            raise CheckError(f"{where}: no condition {name}")
        return self.cond(c, where)

    def cond(self, c, where):
        (fn, arg), = c.items()
        if fn == "Fn::Equals":
            a, b = (self(x, where) for x in arg)
            return a == b
        if fn == "Fn::Not":
            return not self.cond(arg[0], where)
        if fn == "Fn::And":
            return all(self.cond(x, where) for x in arg)
        if fn == "Fn::Or":
            return any(self.cond(x, where) for x in arg)
        if fn == "Condition":
            return self.condition(arg, where)
        raise CheckError(f"{where}: cannot evaluate condition {fn}")

    def ref(self, name, where):
        if name in self.values:
            return self.values[name]
        r = self.resources.get(name)
        if r is None:
            raise CheckError(f"{where}: Ref {name}: no such parameter or resource")
        t, props = r["Type"], r.get("Properties", {})
        if t == "AWS::SQS::Queue":
            return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.named(name, 'QueueName', where)}"
        if t.startswith("AWS::ApiGatewayV2::") and t != "AWS::ApiGatewayV2::Stage":
            # An id API Gateway makes; ferry local's is the logical id, lower-cased.
            return name.lower()
        key = {"AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName", "AWS::Events::EventBus": "Name",
               "AWS::Lambda::Function": "FunctionName", "AWS::IAM::Role": "RoleName"}.get(t)
        if key and key in props:
            return self.named(name, key, where)
        raise CheckError(f"{where}: Ref {name} ({t}): cannot resolve (no explicit name)")

    def named(self, name, key, where):
        props = self.resources[name].get("Properties", {})
        if key not in props:
            raise CheckError(f"{where}: {name} has no {key}, so its name is unknown")
        return self(props[key], f"{name}.{key}")

    def getatt(self, name, attr, where):
        r = self.resources.get(name)
        if r is None:
            raise CheckError(f"{where}: GetAtt {name}.{attr}: no such resource")
        t, p, a = r["Type"], "aws", self.account
        if t == "AWS::DynamoDB::Table":
            table = self.named(name, "TableName", where)
            if attr == "Arn":
                return f"arn:{p}:dynamodb:{self.region}:{a}:table/{table}"
            if attr == "StreamArn":
                # The real ARN ends in the stream's creation time, unknown here.
                return f"arn:{p}:dynamodb:{self.region}:{a}:table/{table}/stream/*"
        if t == "AWS::SQS::Queue":
            q = self.named(name, "QueueName", where)
            if attr == "Arn":
                return f"arn:{p}:sqs:{self.region}:{a}:{q}"
            if attr == "QueueName":
                return q
            if attr == "QueueUrl":
                return self.ref(name, where)
        if t == "AWS::S3::Bucket":
            b = self.named(name, "BucketName", where)
            if attr == "Arn":
                return f"arn:{p}:s3:::{b}"
        if t == "AWS::Events::EventBus":
            bus = self.named(name, "Name", where)
            if attr == "Arn":
                return f"arn:{p}:events:{self.region}:{a}:event-bus/{bus}"
            if attr == "Name":
                return bus
        if t == "AWS::Logs::LogGroup" and attr == "Arn":
            return f"arn:{p}:logs:{self.region}:{a}:log-group:{self.named(name, 'LogGroupName', where)}:*"
        if t == "AWS::IAM::Role" and attr == "Arn":
            return f"arn:{p}:iam::{a}:role/{name}"
        raise CheckError(f"{where}: cannot resolve GetAtt {name}.{attr} ({t})")

    def sub(self, arg, where):
        if isinstance(arg, list):
            s, extra = arg
            extra = {k: self(v, f"{where}.{k}") for k, v in extra.items()}
        else:
            s, extra = arg, {}

        def var(m):
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in extra:
                return str(extra[name])
            if "." in name:
                res, attr = name.split(".", 1)
                return str(self.getatt(res, attr, where))
            return str(self.ref(name, where))

        return re.sub(r"\$\{([^}]+)\}", var, s)


# ---------------------------------------------------------------- calls → IAM

SECRET_SUFFIX = "-Ab1Cd2"  # real secret ARNs end in - and six random characters


def sqs_arn(url, region):
    parts = urlparse(url).path.strip("/").split("/")
    if len(parts) != 2:
        raise CheckError(f"cannot read account and queue from queue URL {url}")
    return f"arn:aws:sqs:{region}:{parts[0]}:{parts[1]}"


def needs(call, account, streams):
    """Returns the (action, resource ARN) pairs a recorded call needs."""
    op, svc, region = call["operation"], call["service"], call["region"]
    res = call.get("resources", {})

    def one(field):
        v = res.get(field, [])
        if len(v) != 1:
            raise CheckError(f"{svc} {op}: expected one {field}, recorded {v}")
        return v[0]

    if svc == "S3":
        bucket = one("Bucket")
        obj = lambda: f"arn:aws:s3:::{bucket}/{one('Key')}"  # noqa: E731
        versioned = bool(res.get("VersionId"))
        table = {
            "ListObjectsV2": ("s3:ListBucket", "bucket"), "ListObjects": ("s3:ListBucket", "bucket"),
            "HeadBucket": ("s3:ListBucket", "bucket"),
            "ListObjectVersions": ("s3:ListBucketVersions", "bucket"),
            "ListMultipartUploads": ("s3:ListBucketMultipartUploads", "bucket"),
            "GetBucketLocation": ("s3:GetBucketLocation", "bucket"),
            "GetObject": ("s3:GetObjectVersion" if versioned else "s3:GetObject", "object"),
            "HeadObject": ("s3:GetObjectVersion" if versioned else "s3:GetObject", "object"),
            "GetObjectTagging": ("s3:GetObjectVersionTagging" if versioned else "s3:GetObjectTagging", "object"),
            "PutObject": ("s3:PutObject", "object"),
            "CreateMultipartUpload": ("s3:PutObject", "object"),
            "UploadPart": ("s3:PutObject", "object"),
            "CompleteMultipartUpload": ("s3:PutObject", "object"),
            "AbortMultipartUpload": ("s3:AbortMultipartUpload", "object"),
            "ListParts": ("s3:ListMultipartUploadParts", "object"),
            "DeleteObject": ("s3:DeleteObjectVersion" if versioned else "s3:DeleteObject", "object"),
        }
        if op in ("CopyObject", "UploadPartCopy"):
            src = unquote(one("CopySource")).lstrip("/")
            path, _, query = src.partition("?")
            action = "s3:GetObjectVersion" if "versionId=" in query else "s3:GetObject"
            return [(action, f"arn:aws:s3:::{path}"), ("s3:PutObject", obj())]
        if op == "DeleteObjects":
            return [("s3:DeleteObject", f"arn:aws:s3:::{bucket}/{k}") for k in res.get("Delete.Objects.Key", [])]
        if op in table:
            action, kind = table[op]
            return [(action, f"arn:aws:s3:::{bucket}" if kind == "bucket" else obj())]
    if svc == "DynamoDB":
        tarn = lambda t: f"arn:aws:dynamodb:{region}:{account}:table/{t}"  # noqa: E731
        if op in ("GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "DescribeTable"):
            arn = tarn(one("TableName"))
            if res.get("IndexName"):
                arn += "/index/" + one("IndexName")
            return [("dynamodb:" + op, arn)]
        if op in ("TransactWriteItems", "TransactGetItems"):
            per = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                   "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
            out = [("dynamodb:" + per[k.split(".")[1]], tarn(t))
                   for k, ts in res.items() if k.startswith("TransactItems.") for t in ts]
            if not out:
                raise CheckError(f"DynamoDB {op}: no tables recorded")
            return out
        if op in ("BatchWriteItem", "BatchGetItem"):
            # IAM authorises these as themselves (dynamodb:BatchWriteItem), per table.
            return [("dynamodb:" + op, tarn(t)) for k, ts in res.items() if k.startswith("RequestItems") for t in ts]
    if svc == "DynamoDB Streams":
        if op in ("DescribeStream", "GetShardIterator"):
            return [("dynamodb:" + op, one("StreamArn"))]
        if op == "GetRecords":
            # Its input names only a shard iterator: the streams are those the
            # same function and source opened iterators on.
            key = (call["function"], call["source"])
            if not streams.get(key):
                raise CheckError(f"{key}: GetRecords recorded but no GetShardIterator to name its stream")
            return [("dynamodb:GetRecords", s) for s in sorted(streams[key])]
        if op == "ListStreams":
            return [("dynamodb:ListStreams", "*")]
    if svc == "SQS":
        actions = {"SendMessage": "sqs:SendMessage", "SendMessageBatch": "sqs:SendMessage",
                   "ReceiveMessage": "sqs:ReceiveMessage", "DeleteMessage": "sqs:DeleteMessage",
                   "DeleteMessageBatch": "sqs:DeleteMessage", "ChangeMessageVisibility": "sqs:ChangeMessageVisibility",
                   "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
                   "GetQueueAttributes": "sqs:GetQueueAttributes"}
        if op in actions:
            return [(actions[op], sqs_arn(one("QueueUrl"), region))]
        if op == "GetQueueUrl":
            return [("sqs:GetQueueUrl", f"arn:aws:sqs:{region}:{account}:{one('QueueName')}")]
    if svc == "Secrets Manager" and op in ("GetSecretValue", "DescribeSecret"):
        sid = one("SecretId")
        arn = sid if sid.startswith("arn:") else f"arn:aws:secretsmanager:{region}:{account}:secret:{sid}{SECRET_SUFFIX}"
        return [("secretsmanager:" + op, arn)]
    if svc == "SSM":
        parn = lambda n: f"arn:aws:ssm:{region}:{account}:parameter/{n.lstrip('/')}"  # noqa: E731
        if op == "GetParameter":
            return [("ssm:GetParameter", parn(one("Name")))]
        if op == "GetParameters":
            return [("ssm:GetParameters", parn(n)) for n in res.get("Names", [])]
        if op == "GetParametersByPath":
            return [("ssm:GetParametersByPath", parn(one("Path")))]
    if svc == "EventBridge" and op == "PutEvents":
        buses = res.get("Entries.EventBusName") or ["default"]
        return [("events:PutEvents", b if b.startswith("arn:") else f"arn:aws:events:{region}:{account}:event-bus/{b}")
                for b in buses]
    if svc == "STS" and op == "GetCallerIdentity":
        return []  # needs no permission
    raise CheckError(f"no IAM mapping for {svc} {op} (add it to needs() in {os.path.relpath(__file__, ROOT)})")


def show(resource):
    """Prints a needed resource as IAM would see it (a secret's random suffix as ??????)."""
    return resource.replace(SECRET_SUFFIX, "-??????")


def general(resource):
    """Summarises a needed resource for the report: an S3 object by its bucket and first folder."""
    m = re.match(r"^(arn:aws:s3:::[^/]+)/(.*)$", resource)
    if m:
        folder, slash, _ = m.group(2).partition("/")
        return f"{m.group(1)}/{folder + '/' if slash else ''}*"
    return show(resource)


# ---------------------------------------------------------------- matching


def glob_re(pattern, case):
    rx = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("^" + rx + "$", 0 if case else re.IGNORECASE)


def as_list(v):
    return v if isinstance(v, list) else [v]


class Statement:
    def __init__(self, doc, sid, origin):
        self.sid, self.origin = sid, origin
        for bad in ("NotAction", "NotResource", "NotPrincipal"):
            if bad in doc:
                raise CheckError(f"{self.name()}: {bad} is not supported; write the allowed actions and resources out")
        if doc.get("Effect") != "Allow":
            raise CheckError(f"{self.name()}: Effect {doc.get('Effect')}: only Allow statements are supported")
        self.actions = [str(a) for a in as_list(doc.get("Action", []))]
        self.resources = [str(r) for r in as_list(doc.get("Resource", []))]
        for r in self.resources:
            if "${" in r:
                raise CheckError(f"{self.name()}: resource {r}: policy variables are not supported")
        self.condition = "Condition" in doc
        self.action_re = [glob_re(a, case=False) for a in self.actions]
        self.resource_re = [glob_re(r, case=True) for r in self.resources]
        self.used_actions, self.used_resources = set(), set()

    def name(self):
        return f"{self.sid or '(no Sid)'} [{self.origin}]"

    def allows(self, action, resource):
        acts = [i for i, rx in enumerate(self.action_re) if rx.match(action)]
        ress = [i for i, rx in enumerate(self.resource_re) if rx.match(resource)]
        if acts and ress:
            self.used_actions.update(acts)
            self.used_resources.update(ress)
            return True
        return False


def role_of(cfn, logical):
    """Returns the logical id of the role a function's Role names, or None."""
    ref = cfn["Resources"][logical]["Properties"].get("Role")
    if isinstance(ref, dict) and "Fn::GetAtt" in ref:
        return as_list(ref["Fn::GetAtt"])[0].split(".")[0]
    return None


def function_statements(cfn, logical, resolve):
    """Returns the Statements of a function's role, resolved."""
    role_name = role_of(cfn, logical)
    if role_name is None:
        raise CheckError(f"{logical}: its Role is not a role of this template")
    role = cfn["Resources"][role_name]["Properties"]
    out = []
    for arn in role.get("ManagedPolicyArns", []):
        arn = resolve(arn, f"{role_name}.ManagedPolicyArns")
        if arn not in MANAGED:
            raise CheckError(f"{logical}: managed policy {arn}: its document is not known here (add it to MANAGED)")
        name = arn.rsplit("/", 1)[1]
        out += [Statement(s, name, "managed policy") for s in MANAGED[arn]]
    for pol in role.get("Policies", []):
        doc = resolve(pol["PolicyDocument"], f"{role_name}.{pol['PolicyName']}")
        for i, s in enumerate(as_list(doc.get("Statement", []))):
            out.append(Statement(s, s.get("Sid"), f"{pol['PolicyName']}#{i}"))
    return out


# ---------------------------------------------------------------- the check


def read_calls(paths):
    calls, files = [], []
    for p in paths:
        files += sorted(glob.glob(os.path.join(p, "calls-*.jsonl"))) if os.path.isdir(p) else [p]
    if not files:
        raise CheckError(f"no recordings (calls-*.jsonl) in {', '.join(paths)}")
    seen = set()
    for f in files:
        with open(f) as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    c = json.loads(line)
                except ValueError as e:
                    raise CheckError(f"{f}:{n}: {e}")
                key = json.dumps(c, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    calls.append(c)
    return calls, files


def read_test_only(path):
    """Returns [(pattern, reason)] from a file of `ARN-PATTERN  # reason` lines."""
    out = []
    if not path:
        return out
    with open(path) as f:
        for n, line in enumerate(f, 1):
            pattern, _, reason = line.partition("#")
            if not pattern.strip():
                continue
            if not reason.strip():
                raise CheckError(f"{path}:{n}: {pattern.strip()} needs a reason (`PATTERN  # reason`)")
            out.append((glob_re(pattern.strip(), case=True), pattern.strip(), reason.strip()))
    return out


def origins(tpl):
    """Names each SAM-generated inline policy after what the template wrote: {(fn, index): label}."""
    out = {}
    for logical, r in tpl.get("Resources", {}).items():
        if r.get("Type") != "AWS::Serverless::Function":
            continue
        for i, p in enumerate(r.get("Properties", {}).get("Policies", []) or []):
            if isinstance(p, dict):
                out[(logical, i)] = next(iter(p)) if len(p) == 1 else "inline"
    return out


def check(args):
    stack = json.load(open(args.stack))
    calls, files = read_calls(args.recordings)
    regions = sorted({c["region"] for c in calls})
    if len(regions) != 1:
        raise CheckError(f"calls were made in {regions}: one region expected")
    region = regions[0]
    tpl = load_template(args.template)
    cfn = translate(tpl, stack["parameters"], region)
    resolve = Resolver(cfn, stack, stack["parameters"], region)
    justified = justifications(args.template)
    labels = origins(tpl)
    test_only = read_test_only(args.test_only)

    functions = {}
    for logical, r in cfn["Resources"].items():
        if r["Type"] == "AWS::Lambda::Function":
            functions[r["Properties"]["Handler"]] = logical

    streams = defaultdict(set)
    for c in calls:
        if c["service"] == "DynamoDB Streams":
            streams[(c["function"], c["source"])].update(c.get("resources", {}).get("StreamArn", []))

    out, failed, not_allowed = [], False, 0
    out.append(f"least privilege: {os.path.relpath(args.template)} against {len(calls)} distinct calls "
               f"from {len(files)} recording(s), region {region}, stack {stack['stackName']}")
    if args.allow_unused:
        out.append("unused statements are not reported (--allow-unused)")
    unknown = sorted({c["function"] for c in calls} - set(functions))
    if unknown:
        raise CheckError(f"calls recorded for functions the template does not have: {unknown}")

    for handler, logical in sorted(functions.items(), key=lambda kv: kv[1]):
        statements = function_statements(cfn, logical, resolve)
        for s in statements:
            m = re.match(rf"^{logical}RolePolicy(\d+)#", s.origin)
            if m and (logical, int(m.group(1))) in labels:
                s.origin += f" {labels[(logical, int(m.group(1)))]}"
        allowed, denied, ignored = defaultdict(int), defaultdict(list), defaultdict(int)
        for c in (c for c in calls if c["function"] == handler):
            if c["source"] != "handler" and c["operation"] not in LAMBDA_ESM.get(c["service"], ()):
                ignored[f"{c['source']} {c['service']} {c['operation']}: made by the emulation only, "
                        f"not by Lambda's event source mapping"] += 1
                continue
            for action, resource in needs(c, stack["accountId"], streams):
                skip = next((t for t in test_only if t[0].match(resource)), None)
                if skip:
                    ignored[f"{c['source']} {c['operation']} → {action} on {skip[1]}: test-only resource ({skip[2]})"] += 1
                    continue
                by = [s for s in statements if s.allows(action, resource)]
                if by:
                    allowed[(c["source"], c["service"], c["operation"], action, general(resource),
                             " ".join(sorted({s.sid or s.origin for s in by})))] += 1
                else:
                    denied[(c["source"], c["operation"], action)].append(show(resource))
        findings, excused = [], []

        def finding(s, text):
            reason = (justified.get((logical, s.sid)) or justified.get((role_of(cfn, logical), s.sid))
                      or justified.get((None, s.sid))) if s.sid else None
            (excused if reason else findings).append(f"{text} in {s.name()}" + (f" — justified: {reason}" if reason else ""))

        for s in statements:
            for i, a in enumerate(s.actions):
                if a == "*" or a.endswith(":*"):
                    finding(s, f"wildcard action {a}")
                elif i not in s.used_actions and not args.allow_unused:
                    finding(s, f"unused action {a}")
            for i, r in enumerate(s.resources):
                if r == "*":
                    finding(s, "wildcard resource *")
                elif i not in s.used_resources and not args.allow_unused:
                    finding(s, f"unused resource {r}")
        fails = sum(len(set(v)) for v in denied.values())
        not_allowed += fails
        ok = not denied and not findings
        failed |= not ok
        out.append("")
        out.append(f"{logical} (handler {handler}): {'ok' if ok else 'FAIL'} — "
                   f"{sum(allowed.values())} allowed, {fails} not allowed, {len(findings)} findings, {len(excused)} justified")
        for (src, svc, op, action, resource, by), n in sorted(allowed.items()):
            out.append(f"  allowed  {src:12} {svc} {op} → {action} on {resource} ({n}×) by {by}")
        for (src, op, action), rs in sorted(denied.items()):
            rs = sorted(set(rs))
            more = f" … and {len(rs) - 3} more" if len(rs) > 3 else ""
            out.append(f"  FAIL not allowed: {src} {op} needs {action} on {', '.join(rs[:3])}{more}")
        for f in findings:
            out.append(f"  FAIL {f}")
        for f in excused:
            out.append(f"  justified {f}")
        for text, n in sorted(ignored.items()):
            out.append(f"  ignored  {text} ({n}×)")
        for s in statements:
            if s.condition:
                out.append(f"  note: {s.name()} has a Condition, ignored here (the check is as if it always held)")
        if not args.allow_unused:
            for s in statements:
                if not s.sid and any(f.endswith(f"[{s.origin}]") for f in findings):
                    out.append(f"  note: {s.origin} has no Sid, so it cannot be justified; give it one")
                    break
    out.append("")
    out.append(f"calls not allowed: {not_allowed}")
    out.append("least privilege: FAIL" if failed else "least privilege: ok")
    return "\n".join(out), failed


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--template", default=os.path.join(ROOT, "infra", "template.yaml"))
    p.add_argument("--stack", default=os.path.join(ROOT, "infra", "local", "stack.json"),
                   help="stack name, account id and parameter values (infra/local/stack.json)")
    p.add_argument("--allow-unused", action="store_true",
                   help="do not report unused actions and resources (for recordings of part of the suite)")
    p.add_argument("--test-only", default=os.path.join(HERE, "test-only-resources.txt"),
                   help="resources only the tests use (ARN patterns with reasons); their calls are listed, not judged")
    p.add_argument("--output", help="also write the report to this file")
    p.add_argument("recordings", nargs="+", help="calls-*.jsonl files or directories of them")
    args = p.parse_args(argv)
    try:
        report, failed = check(args)
    except CheckError as e:
        print(f"least privilege: error: {e}", file=sys.stderr)
        return 2
    print(report)
    if args.output:
        with open(args.output, "w") as f:
            f.write(report + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
