"""template.yaml: cfn-lint offline, the SAM transform offline with a dependency-cycle check on its output, and the
deployment invariants users rely on (partial batch responses, DLQ, visibility timeout, least privilege)."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"


def sam_template() -> dict[str, Any]:
    from cfnlint.decode import decode

    tpl, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return json.loads(json.dumps(tpl, default=str))


@pytest.fixture(scope="module")
def cfn() -> dict[str, Any]:
    return transformed(sam_template())


def transformed(tpl: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation the SAM transform produces (offline: code locations stubbed, no AWS calls)."""
    import os

    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    for res in tpl["Resources"].values():
        for key in ("CodeUri", "ContentUri"):
            if key in res.get("Properties", {}):
                res["Properties"][key] = "s3://artifacts/code.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    return transform(tpl, {}, NoManagedPolicies())


def test_cfn_lint_passes_offline():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    out = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def _refs(value: Any, names: set[str]) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "Ref" and isinstance(v, str) and v in names:
                found.add(v)
            elif k == "Fn::GetAtt":
                target = v[0] if isinstance(v, list) else str(v).split(".")[0]
                if target in names:
                    found.add(target)
            elif k == "Fn::Sub":
                text = v if isinstance(v, str) else v[0]
                found |= {n.split(".")[0] for n in re.findall(r"\$\{([^}!]+)\}", text)} & names
                if isinstance(v, list):
                    found |= _refs(v[1], names)
            else:
                found |= _refs(v, names)
    elif isinstance(value, list):
        for v in value:
            found |= _refs(v, names)
    return found


def test_no_circular_dependency_after_transform(cfn):
    assert find_cycle(cfn) is None


def test_cycle_check_catches_the_classic_s3_to_lambda_cycle():
    """SAM#1109: a function with a direct S3 event whose policy names the bucket by !Ref is a cycle."""
    tpl = {"Transform": "AWS::Serverless-2016-10-31", "Resources": {
        "Bucket": {"Type": "AWS::S3::Bucket"},
        "Fn": {"Type": "AWS::Serverless::Function", "Properties": {
            "CodeUri": "x", "Handler": "app.handler", "Runtime": "python3.12",
            "Policies": [{"S3ReadPolicy": {"BucketName": {"Ref": "Bucket"}}}],
            "Events": {"Up": {"Type": "S3", "Properties": {"Bucket": {"Ref": "Bucket"}, "Events": "s3:ObjectCreated:*"}}}}}}}
    cycle = find_cycle(transformed(tpl))
    assert cycle is not None and "Bucket" in cycle


def find_cycle(cfn: dict[str, Any]) -> str | None:
    """A dependency cycle among the resources (Ref, GetAtt, Sub, DependsOn), as 'A -> B -> A', or None."""
    resources = cfn["Resources"]
    names = set(resources)
    graph = {}
    for name, res in resources.items():
        deps = _refs(res.get("Properties", {}), names)
        depends = res.get("DependsOn", [])
        deps |= set([depends] if isinstance(depends, str) else depends)
        graph[name] = deps
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in graph[node]:
            if state.get(dep) == 1:
                raise _Cycle(" -> ".join(path + [node, dep]))
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    try:
        for n in graph:
            if n not in state:
                visit(n, [])
    except _Cycle as cycle:
        return str(cycle)
    return None


class _Cycle(Exception):
    pass


def _sqs_mappings(cfn):
    res = cfn["Resources"]
    for name, r in res.items():
        if r["Type"] == "AWS::Lambda::EventSourceMapping":
            queue = r["Properties"]["EventSourceArn"]["Fn::GetAtt"][0]
            if res[queue]["Type"] == "AWS::SQS::Queue":
                yield name, r["Properties"], queue


def test_every_sqs_fed_function_reports_partial_failures_with_dlq_and_visibility(cfn):
    res = cfn["Resources"]
    mappings = list(_sqs_mappings(cfn))
    assert mappings, "no SQS event source mapping"
    for name, props, queue in mappings:
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"], name
        assert "MaximumConcurrency" in props.get("ScalingConfig", {}), name
        # Lambda: batches above 10 from a standard queue need a batching window of at least 1 s
        assert props["BatchSize"] <= 10 or props.get("MaximumBatchingWindowInSeconds", 0) >= 1, name
        assert props["BatchSize"] <= 10000
        fn = res[props["FunctionName"]["Ref"]]["Properties"]
        q = res[queue]["Properties"]
        assert q["VisibilityTimeout"] >= 6 * fn["Timeout"], f"{queue}: visibility < 6 x {fn['Timeout']}"
        redrive = q["RedrivePolicy"]
        assert int(redrive["maxReceiveCount"]) >= 5
        dlq = redrive["deadLetterTargetArn"]["Fn::GetAtt"][0]
        assert res[dlq]["Type"] == "AWS::SQS::Queue"
        assert res[dlq]["Properties"]["MessageRetentionPeriod"] >= q.get("MessageRetentionPeriod", 345600)


def test_functions_run_python312_arm64_with_the_core_layer(cfn):
    fns = {n: r["Properties"] for n, r in cfn["Resources"].items() if r["Type"] == "AWS::Lambda::Function"}
    assert "SubmitFunction" in fns
    for name, p in fns.items():
        assert p["Runtime"] == "python3.12" and p["Architectures"] == ["arm64"], name
        assert any("CoreLayer" in json.dumps(layer) for layer in p["Layers"]), name
    sam = sam_template()["Resources"]
    assert sam["CoreLayer"]["Metadata"] == {"BuildMethod": "python3.12", "BuildArchitecture": "arm64"}
    assert sam["SubmitFunction"]["Properties"]["Handler"] == "app.handler"
    assert (ROOT / "functions" / "submit" / "app.py").exists()


def test_least_privilege_policies(cfn):
    for name, r in cfn["Resources"].items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        for policy in r["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                assert not any(a == "*" or a.endswith(":*") for a in actions), (name, actions)
                resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
                assert "*" not in resources, (name, st)


def test_bucket_notifies_the_upload_queue_which_only_accepts_this_bucket(cfn):
    res = cfn["Resources"]
    bucket = res["InputBucket"]
    [cfg] = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert cfg["Event"] == "s3:ObjectCreated:*" and cfg["Queue"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]}
    assert bucket["DependsOn"] == "UploadQueuePolicy"
    [st] = res["UploadQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert st["Principal"] == {"Service": "s3.amazonaws.com"} and st["Action"] == "sqs:SendMessage"
    assert st["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${InputBucketName}"}
    assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_function_environment_uses_documented_variables():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    resources = sam_template()["Resources"]
    for fn in ("SubmitFunction", "ArchiveFunction", "CompactFunction"):
        for name in resources[fn]["Properties"]["Environment"]["Variables"]:
            assert f"`{name}`" in readme, f"{fn}: {name} is not documented in the README"


def test_archive_function_url_and_least_privilege_write(cfn):
    res = cfn["Resources"]
    url = res["ArchiveFunctionUrl"]["Properties"]
    assert url["AuthType"] == "NONE" and url["TargetFunctionArn"] == {"Ref": "ArchiveFunction"}
    role = res["ArchiveFunctionRole"]["Properties"]
    statements = [st for p in role["Policies"] for st in p["PolicyDocument"]["Statement"]]
    assert [st["Action"] for st in statements] == ["s3:PutObject", "s3:GetObject", "s3:ListBucket"]
    assert statements[0]["Resource"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArchiveBucket}/${ArchivePrefix}/*"}
    claims = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArchiveBucket}/${ArchivePrefix}/claims/*"}
    assert statements[1]["Resource"] == claims  # it reads claims (BatchTask TaskIds), nothing else
    assert statements[2]["Condition"] == {"StringLike": {"s3:prefix": {"Fn::Sub": "${ArchivePrefix}/claims/*"}}}
    submit = [st for p in res["SubmitFunctionRole"]["Properties"]["Policies"] for st in p["PolicyDocument"]["Statement"]]
    ledger = {"Fn::Sub": "arn:${AWS::Partition}:s3:::${ArchiveBucket}/${ArchivePrefix}/event_type=submissions/*"}
    assert [st["Resource"] for st in submit if "s3:PutObject" in st["Action"]] == [claims, ledger]
    assert res["ArchiveBucket"]["DeletionPolicy"] == "Retain"


def test_s3_batch_operations_role_invokes_only_the_submit_function(cfn):
    res = cfn["Resources"]
    role = res["BatchOperationsRole"]["Properties"]
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "batchoperations.s3.amazonaws.com"}
    assert trust["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    statements = {st["Sid"]: st for p in role["Policies"] for st in p["PolicyDocument"]["Statement"]}
    assert statements["InvokeSubmitFunction"]["Action"] == "lambda:InvokeFunction"
    assert statements["InvokeSubmitFunction"]["Resource"][0] == {"Fn::GetAtt": ["SubmitFunction", "Arn"]}
    assert statements["WriteCompletionReports"]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${ArchiveBucket}/batch-operations/*"}
    outputs = cfn["Outputs"]
    assert outputs["BatchOperationsRoleArn"]["Value"] == {"Fn::GetAtt": ["BatchOperationsRole", "Arn"]}
    assert outputs["SubmitFunctionArn"]["Value"] == {"Fn::GetAtt": ["SubmitFunction", "Arn"]}


def test_submit_notifies_the_archive_function_and_guards_the_archive():
    env = sam_template()["Resources"]["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    assert env["MPS_NOTIFY_URL"] == {"Fn::If": ["NotifyByUrl", {"Fn::GetAtt": ["ArchiveFunctionUrl", "FunctionUrl"]}, ""]}
    assert env["MPS_NOTIFY_SQS_QUEUE"] == {"Fn::If": ["NotifyBySqs", {"Fn::GetAtt": ["CallbackQueue", "QueueName"]}, ""]}
    archive_env = sam_template()["Resources"]["ArchiveFunction"]["Properties"]["Environment"]["Variables"]
    assert env["ARCHIVE_URI"] == archive_env["ARCHIVE_URI"]  # the submit job never submits the archive


def _rule_value(expr: Any, params: dict[str, str]) -> Any:
    """Evaluate a CloudFormation rule expression (Ref, Fn::Equals, Fn::Not, Fn::And, Fn::Or) for ``params``."""
    if isinstance(expr, dict):
        [(fn, arg)] = expr.items()
        if fn == "Ref":
            return params[arg]
        values = [_rule_value(a, params) for a in arg]
        return {"Fn::Equals": lambda v: v[0] == v[1], "Fn::Not": lambda v: not v[0], "Fn::And": all,
                "Fn::Or": any}[fn](values)
    return expr


def rules_refuse(params: dict[str, str]) -> list[str]:
    """The AssertDescriptions of the template's Rules that ``params`` (defaults filled in) fail."""
    tpl = sam_template()
    values = {k: str(v.get("Default", "")) for k, v in tpl["Parameters"].items()} | params
    failed = []
    for rule in tpl.get("Rules", {}).values():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], values):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not _rule_value(a["Assert"], values)]
    return failed


def test_url_callbacks_need_a_notify_key_or_a_token():
    assert rules_refuse({"NotifyType": "URL"}) and "NotifyKey" in rules_refuse({"NotifyType": "URL"})[0]
    assert rules_refuse({"NotifyType": "URL", "NotifyKey": "k"}) == []
    assert rules_refuse({"NotifyType": "URL", "CallbackToken": "t"}) == []
    assert rules_refuse({"NotifyType": "AWS-SQS"}) == []  # queue messages are sent with the MPS key's IAM user
    assert "Rules" in transformed(sam_template())  # the SAM transform keeps them for CloudFormation to enforce


def test_callback_token_reaches_the_submit_job_not_the_url_string():
    env = sam_template()["Resources"]["SubmitFunction"]["Properties"]["Environment"]["Variables"]
    assert env["CALLBACK_TOKEN"] == {"Fn::If": ["NotifyByUrl", {"Ref": "CallbackToken"}, ""]}
    assert "CallbackToken" not in json.dumps(env["MPS_NOTIFY_URL"])  # the job URL-encodes it (a '+' survives)


def test_layer_requirements_are_pinned_and_runtime_only():
    lines = [ln.split("#")[0].strip() for ln in (ROOT / "layers/core/requirements.txt").read_text().splitlines()]
    reqs = [ln for ln in lines if ln]
    assert reqs and all(re.match(r"^[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*$", r) for r in reqs), reqs
    names = {r.split("==")[0].lower() for r in reqs}
    assert not names & {"boto3", "botocore", "moto", "cfn-lint", "aws-sam-translator", "pytest", "hypothesis",
                        "tencentcloud-sdk-python-mps", "tencentcloud-sdk-python-common", "imageio-ffmpeg"}
    assert not any(p.name == "mpslocal" for p in (ROOT / "layers").rglob("*"))


def test_compact_function_runs_hourly_with_list_get_put_delete_under_the_archive_partitions_only(cfn):
    res = cfn["Resources"]
    [schedule] = [r for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule"]
    props = schedule["Properties"]
    assert props["ScheduleExpression"] == "cron(10 * * * ? *)" and props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert props["Target"]["Arn"] == {"Fn::GetAtt": ["CompactFunction", "Arn"]}
    assert json.loads(props["Target"]["Input"]) == json.loads((ROOT / "events" / "scheduler_compact.json").read_text())
    role = res["CompactFunctionRole"]["Properties"]
    statements = [st for p in role["Policies"] for st in p["PolicyDocument"]["Statement"]]
    assert [st["Action"] for st in statements] == ["s3:ListBucket", ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]]
    assert statements[0]["Condition"]["StringLike"]["s3:prefix"] == [
        {"Fn::Sub": "${ArchivePrefix}/"}, {"Fn::Sub": "${ArchivePrefix}/event_type=*"}]
    assert statements[1]["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:s3:::${ArchiveBucket}/${ArchivePrefix}/event_type=*"}  # not claims/
    fn = res["CompactFunction"]["Properties"]
    assert fn["Timeout"] == 900 and fn["Handler"] == "app.handler"
