"""checkov custom check CKV_FERRY_1: the event table outlives its stack.

The transfers table is ferry's only record of every transfer. Deleting or replacing the
stack must keep it (DeletionPolicy and UpdateReplacePolicy Retain), deleting it must take
turning deletion protection off first (DeletionProtectionEnabled), and point-in-time
recovery must be on. It applies to every AWS::DynamoDB::Table, so a new table is held
to it until its Metadata skips it with the reason (the live channel's connections,
which expire within hours, do). Loaded by checkov through infra/checkov.yaml's external-checks-dir.

checkov hands a resource check only a resource's Type, Properties and Metadata, so the
check reads DeletionPolicy and UpdateReplacePolicy from the scanned file itself: checkov
names it relative to the directory scanned (-d DIR on the command line) or the working
directory (-f FILE). A file it cannot find fails the check, naming the paths tried.
"""

import os
import sys

from checkov.cloudformation.checks.resource.base_resource_check import BaseResourceCheck
from checkov.cloudformation.parser import parse
from checkov.common.models.enums import CheckCategories, CheckResult


class EventTableRetained(BaseResourceCheck):
    def __init__(self):
        super().__init__(
            name="Ensure the event table is retained, deletion-protected and point-in-time recoverable",
            id="CKV_FERRY_1",
            categories=[CheckCategories.BACKUP_AND_RECOVERY],
            supported_resources=["AWS::DynamoDB::Table"],
        )
        self._file, self._name = None, None

    def run(self, scanned_file, entity_configuration, entity_name, entity_type, skip_info):
        self._file, self._name = scanned_file, entity_name
        return super().run(scanned_file, entity_configuration, entity_name, entity_type, skip_info)

    def _attributes(self):
        """Returns the resource's DeletionPolicy and UpdateReplacePolicy, as written."""
        f = self._file or ""
        dirs = [os.getcwd()] + [sys.argv[i + 1] for i, a in enumerate(sys.argv[:-1]) if a in ("-d", "--directory")]
        tried = [f] + [os.path.normpath(os.path.join(d, f.lstrip("/"))) for d in dirs]
        path = next((p for p in tried if os.path.isfile(p)), None)
        if path is None:
            self.details.append(f"CKV_FERRY_1: cannot find the scanned file to read DeletionPolicy (tried {tried})")
            return None, None
        template, _ = parse(path)
        resource = ((template or {}).get("Resources") or {}).get((self._name or "").split(".")[-1]) or {}
        return resource.get("DeletionPolicy"), resource.get("UpdateReplacePolicy")

    def scan_resource_conf(self, conf):
        props = conf.get("Properties") or {}
        pitr = (props.get("PointInTimeRecoverySpecification") or {}).get("PointInTimeRecoveryEnabled")
        deletion, replace = self._attributes()
        ok = (
            deletion == "Retain"
            and replace == "Retain"
            and props.get("DeletionProtectionEnabled") in (True, "true")
            and pitr in (True, "true")
        )
        return CheckResult.PASSED if ok else CheckResult.FAILED


check = EventTableRetained()
