#!/usr/bin/env python3
"""Self-tests of the infrastructure checks: each check must reject a copy of the template
broken on purpose, with the failure it exists to report, and accept the template as is.

  * a wildcard action in AdvanceFunction's policies → least_privilege.py fails;
  * AdvanceFunction's s3:ListMultipartUploadParts grant removed → least_privilege.py fails
    on the recorded calls of testdata/calls.jsonl (advance's ListParts on the delivery
    bucket), which it otherwise allows (the positive control);
  * the justification convention: testdata/justify.yaml's justified statements pass, its
    unjustified unused one fails;
  * a bucket without its PublicAccessBlockConfiguration → checkov's CKV_AWS_53..56 fail;
  * the event table without DeletionPolicy Retain, UpdateReplacePolicy Retain, deletion
    protection or point-in-time recovery → CKV_FERRY_1 (checkov/EventTableRetained.py) fails.

The broken copies are written as JSON (a CloudFormation template may be JSON) into a
temporary directory. Run it with the infra venv's Python: infra/checks/selftest.sh.
"""

import copy
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import least_privilege  # noqa: E402

TEMPLATE = os.path.join(ROOT, "infra", "template.yaml")
CALLS = os.path.join(HERE, "testdata", "calls.jsonl")
BIN = os.path.dirname(sys.executable)
PUBLIC_ACCESS = ["CKV_AWS_53", "CKV_AWS_54", "CKV_AWS_55", "CKV_AWS_56"]

failures = []


def expect(ok, what, detail=""):
    print(f"{'ok  ' if ok else 'FAIL'} {what}")
    if not ok:
        failures.append(what)
        if detail:
            print("     " + detail.replace("\n", "\n     "))


def statements(tpl, fn):
    """Returns the statement list of fn's role's first inline policy."""
    role = least_privilege.role_of(tpl, fn)
    return tpl["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]


def add_wildcard(tpl):
    statements(tpl, "AdvanceFunction").append({
        "Sid": "SelftestWildcard", "Effect": "Allow", "Action": "s3:*",
        "Resource": {"Fn::Sub": "arn:${AWS::Partition}:s3:::${DeliveryBucketName}/*"}})


def drop_action(tpl, fn, action):
    """Removes action from fn's role's statements; returns how many it was removed from."""
    removed, kept = 0, []
    for s in statements(tpl, fn):
        acts = least_privilege.as_list(s.get("Action", [])) if "Action" in s else None
        if acts is not None and action in acts:
            removed += 1
            acts = [a for a in acts if a != action]
            if not acts:
                continue
            s = dict(s, Action=acts)
        kept.append(s)
    statements(tpl, fn)[:] = kept
    return removed


def run(*args):
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def check_least_privilege(tpl, tmp):
    lp = os.path.join(HERE, "least_privilege.py")

    code, out = run(lp, "--allow-unused", CALLS)
    expect("calls not allowed: 0" in out, "least privilege: the template allows every call of testdata/calls.jsonl",
           out[-3000:])

    broken = copy.deepcopy(tpl)
    add_wildcard(broken)
    path = os.path.join(tmp, "wildcard.json")
    json.dump(broken, open(path, "w"))
    code, out = run(lp, "--allow-unused", "--template", path, CALLS)
    expect(code == 1 and "FAIL wildcard action s3:* in SelftestWildcard" in out,
           "least privilege: a wildcard action (s3:*) in AdvanceFunction's policies fails", out[-3000:])

    broken = copy.deepcopy(tpl)
    n = drop_action(broken, "AdvanceFunction", "s3:ListMultipartUploadParts")
    expect(n > 0, "least privilege: AdvanceFunction has an s3:ListMultipartUploadParts grant to remove")
    path = os.path.join(tmp, "no-listparts.json")
    json.dump(broken, open(path, "w"))
    code, out = run(lp, "--allow-unused", "--template", path, CALLS)
    want = "FAIL not allowed: handler ListParts needs s3:ListMultipartUploadParts on arn:aws:s3:::ferry-local-delivered/"
    expect(code == 1 and want in out,
           "least privilege: without s3:ListMultipartUploadParts, advance's ListParts on the delivery bucket fails",
           out[-3000:])

    code, out = run(lp, "--template", os.path.join(HERE, "testdata", "justify.yaml"),
                    os.path.join(HERE, "testdata", "justify-calls.jsonl"))
    fails = [line.strip() for line in out.splitlines() if line.startswith("  FAIL ")]
    expect(code == 1
           and "justified wildcard resource * in AWSLambdaBasicExecutionRole [managed policy] — justified: CloudWatch" in out
           and "justified wildcard action logs:* in Logs" in out
           and fails == ["FAIL unused action s3:DeleteObject in Unjustified [ThingFunctionRolePolicy2#0 Statement]"],
           "least privilege: '# least-privilege: Sid: reason' excuses its statement only", out[-3000:])


def checkov(files):
    """Returns {file: {(check id, resource)}} of failed checks."""
    cmd = [os.path.join(BIN, "checkov"), "--framework", "cloudformation", "--config-file",
           os.path.join(ROOT, "infra", "checkov.yaml"), "--skip-download", "-o", "json"]
    for f in files:
        cmd += ["-f", f]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    try:
        reports = json.loads(p.stdout)
    except ValueError:
        raise SystemExit(f"checkov: no JSON report (exit {p.returncode}):\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    failed = {os.path.basename(f): set() for f in files}
    for r in reports if isinstance(reports, list) else [reports]:
        for c in r.get("results", {}).get("failed_checks", []):
            failed.setdefault(os.path.basename(c["file_path"]), set()).add((c["check_id"], c["resource"]))
    return failed


def check_checkov(tpl, tmp):
    variants = {"as-is.json": lambda t: None}

    def public(t):
        del t["Resources"]["UploadBucket"]["Properties"]["PublicAccessBlockConfiguration"]
    variants["public-bucket.json"] = public
    retain = {
        "no-deletion-policy.json": lambda t: t["Resources"]["Transfers"].pop("DeletionPolicy"),
        "no-replace-policy.json": lambda t: t["Resources"]["Transfers"].pop("UpdateReplacePolicy"),
        "no-deletion-protection.json": lambda t: t["Resources"]["Transfers"]["Properties"].pop("DeletionProtectionEnabled"),
        "no-pitr.json": lambda t: t["Resources"]["Transfers"]["Properties"].pop("PointInTimeRecoverySpecification"),
    }
    variants.update(retain)
    files = []
    for name, mutate in variants.items():
        t = copy.deepcopy(tpl)
        mutate(t)
        files.append(os.path.join(tmp, name))
        json.dump(t, open(files[-1], "w"), indent=1)
    failed = checkov(files)

    base = failed["as-is.json"]
    bucket = "AWS::S3::Bucket.UploadBucket"
    table = "AWS::DynamoDB::Table.Transfers"
    expect(not any((c, bucket) in base for c in PUBLIC_ACCESS) and ("CKV_FERRY_1", table) not in base,
           "checkov: the template as is passes CKV_AWS_53..56 and CKV_FERRY_1", str(sorted(base)))
    got = failed["public-bucket.json"]
    expect(all((c, bucket) in got for c in PUBLIC_ACCESS),
           "checkov: a bucket without PublicAccessBlockConfiguration fails CKV_AWS_53..56 (not skipped)", str(sorted(got)))
    for name in retain:
        expect(("CKV_FERRY_1", table) in failed[name],
               f"checkov: the event table {name[:-5].replace('-', ' ')} fails CKV_FERRY_1", str(sorted(failed[name])))


def main():
    tpl = least_privilege.load_template(TEMPLATE)
    with tempfile.TemporaryDirectory(prefix="ferry-selftest-") as tmp:
        check_least_privilege(tpl, tmp)
        check_checkov(tpl, tmp)
    if failures:
        print(f"selftest: {len(failures)} failed")
        return 1
    print("selftest: the checks reject every broken template")
    return 0


if __name__ == "__main__":
    sys.exit(main())
