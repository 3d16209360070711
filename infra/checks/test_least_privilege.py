"""Unit tests of least_privilege.py's table of calls → IAM actions and of its matching.

Run by infra/checks/selftest.sh: python -m unittest discover -s infra/checks.
"""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import least_privilege as lp  # noqa: E402

ACCOUNT = "123456789012"


def call(service, operation, function="advance", source="handler", **resources):
    return {"function": function, "source": source, "service": service, "operation": operation,
            "region": "us-east-1", "resources": {k.replace("__", "."): v for k, v in resources.items()}}


class Needs(unittest.TestCase):
    def needs(self, c, streams=None):
        return lp.needs(c, ACCOUNT, streams or {})

    def test_s3_irregular_actions(self):
        cases = [
            (call("S3", "ListObjectVersions", Bucket=["b"]), [("s3:ListBucketVersions", "arn:aws:s3:::b")]),
            (call("S3", "ListObjectsV2", Bucket=["b"]), [("s3:ListBucket", "arn:aws:s3:::b")]),
            (call("S3", "HeadObject", Bucket=["b"], Key=["k/1"]), [("s3:GetObject", "arn:aws:s3:::b/k/1")]),
            (call("S3", "GetObject", Bucket=["b"], Key=["k"], VersionId=["set"]),
             [("s3:GetObjectVersion", "arn:aws:s3:::b/k")]),
            (call("S3", "UploadPart", Bucket=["b"], Key=["k"]), [("s3:PutObject", "arn:aws:s3:::b/k")]),
            (call("S3", "ListParts", Bucket=["b"], Key=["k"]), [("s3:ListMultipartUploadParts", "arn:aws:s3:::b/k")]),
            (call("S3", "UploadPartCopy", Bucket=["dst"], Key=["to"], CopySource=["src/from%20x?versionId=v1"]),
             [("s3:GetObjectVersion", "arn:aws:s3:::src/from x"), ("s3:PutObject", "arn:aws:s3:::dst/to")]),
            (call("S3", "CopyObject", Bucket=["dst"], Key=["to"], CopySource=["/src/from"]),
             [("s3:GetObject", "arn:aws:s3:::src/from"), ("s3:PutObject", "arn:aws:s3:::dst/to")]),
        ]
        for c, want in cases:
            with self.subTest(c["operation"]):
                self.assertEqual(self.needs(c), want)

    def test_dynamodb(self):
        t = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t"
        self.assertEqual(self.needs(call("DynamoDB", "Query", TableName=["t"], IndexName=["byRef"])),
                         [("dynamodb:Query", t + "/index/byRef")])
        self.assertEqual(sorted(self.needs(call("DynamoDB", "TransactWriteItems",
                                                TransactItems__Put__TableName=["t"],
                                                TransactItems__ConditionCheck__TableName=["t"]))),
                         [("dynamodb:ConditionCheckItem", t), ("dynamodb:PutItem", t)])
        self.assertEqual(self.needs(call("DynamoDB", "BatchWriteItem", RequestItems__PutRequest__TableName=["t"])),
                         [("dynamodb:BatchWriteItem", t)])

    def test_stream_records_name_the_stream_of_their_iterators(self):
        s = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/t/stream/2026-01-01T00:00:00.000"
        got = self.needs(call("DynamoDB Streams", "GetRecords", source="event source"),
                         {("advance", "event source"): {s}})
        self.assertEqual(got, [("dynamodb:GetRecords", s)])
        with self.assertRaises(lp.CheckError):
            self.needs(call("DynamoDB Streams", "GetRecords", source="event source"))

    def test_sqs_secrets_ssm_events(self):
        self.assertEqual(self.needs(call("SQS", "SendMessageBatch", QueueUrl=["http://127.0.0.1:1/111122223333/q"])),
                         [("sqs:SendMessage", "arn:aws:sqs:us-east-1:111122223333:q")])
        (action, arn), = self.needs(call("Secrets Manager", "GetSecretValue", SecretId=["ferry/mesh/key"]))
        self.assertEqual(action, "secretsmanager:GetSecretValue")
        self.assertTrue(lp.glob_re(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ferry/mesh/*", True).match(arn))
        self.assertTrue(lp.glob_re(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ferry/mesh/key-??????", True).match(arn))
        self.assertFalse(lp.glob_re(f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:ferry/mesh/key", True).match(arn),
                         "a secret's ARN ends in a random suffix, so its bare name does not match it")
        self.assertEqual(self.needs(call("SSM", "GetParameter", Name=["/ferry/routes"])),
                         [("ssm:GetParameter", f"arn:aws:ssm:us-east-1:{ACCOUNT}:parameter/ferry/routes")])
        self.assertEqual(self.needs(call("EventBridge", "PutEvents", Entries__EventBusName=["ferry"])),
                         [("events:PutEvents", f"arn:aws:events:us-east-1:{ACCOUNT}:event-bus/ferry")])

    def test_an_unknown_operation_is_an_error(self):
        with self.assertRaisesRegex(lp.CheckError, "no IAM mapping for S3 PutBucketPolicy"):
            self.needs(call("S3", "PutBucketPolicy", Bucket=["b"]))


class Statements(unittest.TestCase):
    def test_actions_match_case_insensitively_resources_exactly(self):
        s = lp.Statement({"Sid": "S", "Effect": "Allow", "Action": ["S3:GetObject*"], "Resource": "arn:aws:s3:::b/in/*"},
                         "S", "test")
        self.assertTrue(s.allows("s3:GetObjectVersion", "arn:aws:s3:::b/in/x"))
        self.assertFalse(s.allows("s3:GetObject", "arn:aws:s3:::b/out/x"))
        self.assertFalse(s.allows("s3:GetObject", "arn:aws:s3:::B/in/x"))

    def test_deny_and_not_action_are_errors(self):
        for doc in ({"Effect": "Deny", "Action": "s3:*", "Resource": "*"},
                    {"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}):
            with self.subTest(doc), self.assertRaises(lp.CheckError):
                lp.Statement(doc, None, "test")


class Resolve(unittest.TestCase):
    def setUp(self):
        cfn = {"Parameters": {"Bucket": {"Type": "String"}, "Prefix": {"Type": "String", "Default": "ferry"}},
               "Resources": {"Q": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-q"}}},
                             "T": {"Type": "AWS::DynamoDB::Table", "Properties": {"TableName": "tbl"}},
                             "X": {"Type": "AWS::SNS::Topic", "Properties": {}}}}
        self.r = lp.Resolver(cfn, {"stackName": "st", "accountId": ACCOUNT}, {"Bucket": "b"}, "eu-west-2")

    def test_intrinsics(self):
        self.assertEqual(self.r({"Fn::Sub": "arn:${AWS::Partition}:s3:::${Bucket}/${Prefix}/*"}, "t"), "arn:aws:s3:::b/ferry/*")
        self.assertEqual(self.r({"Fn::Sub": ["${a}/x", {"a": {"Fn::GetAtt": ["Q", "QueueName"]}}]}, "t"), "st-q/x")
        self.assertEqual(self.r({"Fn::GetAtt": "Q.Arn"}, "t"), f"arn:aws:sqs:eu-west-2:{ACCOUNT}:st-q")
        self.assertEqual(self.r({"Fn::GetAtt": ["T", "StreamArn"]}, "t"), f"arn:aws:dynamodb:eu-west-2:{ACCOUNT}:table/tbl/stream/*")
        self.assertEqual(self.r({"Fn::Join": ["-", [{"Ref": "T"}, "x"]]}, "t"), "tbl-x")

    def test_an_unresolvable_intrinsic_names_where(self):
        with self.assertRaisesRegex(lp.CheckError, r"Policy1\.Statement: cannot resolve GetAtt X\.TopicName"):
            self.r({"Fn::GetAtt": ["X", "TopicName"]}, "Policy1.Statement")
        with self.assertRaisesRegex(lp.CheckError, "here: cannot resolve Fn::ImportValue"):
            self.r({"Fn::ImportValue": "other"}, "here")


if __name__ == "__main__":
    unittest.main()
