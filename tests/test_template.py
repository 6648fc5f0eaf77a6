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


def test_cfn_lint_passes_offline_with_its_informational_checks():
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    out = subprocess.run([str(cfn_lint), "--include-checks", "I", "--", str(TEMPLATE)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and not out.stdout.strip(), out.stdout + out.stderr


def test_every_queue_and_log_group_says_what_happens_to_it_and_dlqs_are_outputs_by_arn(cfn):
    res = cfn["Resources"]
    for name, r in res.items():
        if r["Type"] in ("AWS::SQS::Queue", "AWS::Logs::LogGroup"):
            kept = "Retain" if name.endswith("DLQ") else "Delete"
            assert r.get("DeletionPolicy") == r.get("UpdateReplacePolicy") == kept, name
    outputs = sam_template()["Outputs"]
    assert outputs["UploadDeadLetterQueueArn"]["Value"] == {"Fn::GetAtt": ["UploadDLQ", "Arn"]}
    assert outputs["CallbackDeadLetterQueueArn"]["Value"] == {"Fn::GetAtt": ["CallbackDLQ", "Arn"]}


def test_alarms_watch_each_dlq_and_each_function_and_notify_the_optional_topic(cfn):
    res = cfn["Resources"]
    alarms = {n: r["Properties"] for n, r in res.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    watched_queues = {a["Dimensions"][0]["Value"]["Fn::GetAtt"][0] for a in alarms.values()
                      if a["MetricName"] == "ApproximateNumberOfMessagesVisible"}
    assert watched_queues == {"UploadDLQ", "CallbackDLQ"}
    watched_functions = {a["Dimensions"][0]["Value"]["Ref"] for a in alarms.values() if a["MetricName"] == "Errors"}
    assert watched_functions == {"SubmitFunction", "ArchiveFunction", "CompactFunction", "VodCallbackFunction",
                                 "VodPollerFunction"}
    for a in alarms.values():
        assert a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold"
        assert a["AlarmActions"] == {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    # the dashboard's body is valid JSON once substituted, and shows the metrics the functions write
    body, values = res["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    text = re.sub(r"\$\{[^}]+\}", "x", body)
    widgets = json.loads(text)["widgets"]
    shown = set()
    for w in widgets:
        previous: list[str] = []
        for m in w["properties"]["metrics"]:  # "." repeats the row above (CloudWatch's dashboard shorthand)
            row = [p if p != "." else previous[i] for i, p in enumerate(m)] if m[0] != "..." else m
            previous = row
            if row[0] == "MpsTriggers":
                shown.add(row[1])
    assert {"Submitted", "Duplicate", "SubmitFailed", "Throttled", "Archived", "Rejected", "PushFailed",
            "Compacted"} <= shown
    assert set(values) == {"UploadDlqName", "CallbackDlqName"}


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
    res = resolved(cfn, {"ExistingInputBucket": "false"})["Resources"]
    bucket = res["InputBucket"]
    [cfg] = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert cfg["Event"] == "s3:ObjectCreated:*" and cfg["Queue"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]}
    assert bucket["DependsOn"] == "UploadQueuePolicy" and bucket["DeletionPolicy"] == "Retain"
    [st] = res["UploadQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert st["Principal"] == {"Service": "s3.amazonaws.com"} and st["Action"] == "sqs:SendMessage"
    assert st["Condition"]["ArnLike"]["aws:SourceArn"] == {"Fn::Sub": "arn:${AWS::Partition}:s3:::${InputBucketName}"}
    assert st["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    assert "ExistingBucketUploads" not in res and find_cycle({"Resources": res}) is None


def test_an_existing_bucket_reaches_the_upload_queue_through_eventbridge(cfn):
    out = resolved(cfn, {"ExistingInputBucket": "true", "InputPrefix": "uploads/"})
    res = out["Resources"]
    assert "InputBucket" not in res and find_cycle({"Resources": res}) is None
    assert out["Outputs"]["InputBucket"]["Value"] == {"Ref": "InputBucketName"}
    rule = res["ExistingBucketUploads"]["Properties"]
    assert rule["EventPattern"] == {"source": ["aws.s3"], "detail-type": ["Object Created"],
                                    "detail": {"bucket": {"name": [{"Ref": "InputBucketName"}]},
                                               "object": {"key": [{"prefix": {"Ref": "InputPrefix"}}]}}}
    [target] = rule["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["UploadQueue", "Arn"]}
    assert target["DeadLetterConfig"]["Arn"] == {"Fn::GetAtt": ["UploadDLQ", "Arn"]}
    for policy, queue in (("UploadQueuePolicy", "UploadQueue"), ("UploadDLQPolicy", "UploadDLQ")):
        [st] = res[policy]["Properties"]["PolicyDocument"]["Statement"]
        assert st["Principal"] == {"Service": "events.amazonaws.com"} and st["Resource"] == {
            "Fn::GetAtt": [queue, "Arn"]}
        assert st["Condition"]["ArnEquals"]["aws:SourceArn"] == {"Fn::GetAtt": ["ExistingBucketUploads", "Arn"]}
    # the EventBridge body is one the submit job reads (events/eventbridge_s3.json)
    from mps_triggers.uploads import parse_upload_event

    body = json.loads((ROOT / "events/eventbridge_s3.json").read_text())
    [obj] = parse_upload_event(body).records[0].objects
    assert obj.bucket and obj.key
    whole = resolved(cfn, {"ExistingInputBucket": "true"})["Resources"]["ExistingBucketUploads"]
    assert "object" not in whole["Properties"]["EventPattern"]["detail"]  # no prefix: the whole bucket


def resolved(cfn: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    """``cfn`` as CloudFormation deploys it for ``params`` (defaults filled in): resources and outputs whose
    Condition is false dropped, ``Fn::If`` replaced by its branch, ``AWS::NoValue`` removed. Fails if what is
    kept refers to a resource that was dropped."""
    values = parameter_values(params)
    conditions: dict[str, bool] = {}
    for name, expr in cfn.get("Conditions", {}).items():
        conditions[name] = bool(_rule_value(expr, values, conditions))
    drop = object()

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            if list(value) == ["Fn::If"]:
                name, yes, no = value["Fn::If"]
                return walk(yes if conditions[name] else no)
            if value == {"Ref": "AWS::NoValue"}:
                return drop
            out = {k: walk(v) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not drop}
        if isinstance(value, list):
            return [x for x in (walk(v) for v in value) if x is not drop]
        return value

    resources = {n: walk(r) for n, r in cfn["Resources"].items() if conditions.get(r.get("Condition"), True)}
    outputs = {n: walk(o) for n, o in cfn.get("Outputs", {}).items() if conditions.get(o.get("Condition"), True)}
    gone = set(cfn["Resources"]) - set(resources)
    dangling = _refs({"r": resources, "o": outputs}, gone)
    assert not dangling, f"kept resources or outputs refer to {dangling}, not created for {params}"
    return {"Resources": resources, "Outputs": outputs}


def test_function_environment_uses_documented_variables():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    resources = sam_template()["Resources"]
    for fn in ("SubmitFunction", "ArchiveFunction", "CompactFunction", "VodCallbackFunction", "VodPollerFunction"):
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


def parameter_values(params: dict[str, str]) -> dict[str, str]:
    """The template's parameters: ``params``, and each other parameter's default ("" when it has none)."""
    return {k: str(v.get("Default", "")) for k, v in sam_template()["Parameters"].items()} | params


def _rule_value(expr: Any, params: dict[str, str], conditions: dict[str, bool] | None = None) -> Any:
    """Evaluate a CloudFormation rule or condition expression (Ref, Condition, Fn::Equals, Fn::Not, Fn::And,
    Fn::Or) for ``params`` and the ``conditions`` already evaluated."""
    if isinstance(expr, dict):
        [(fn, arg)] = expr.items()
        if fn == "Ref":
            return params[arg]
        if fn == "Condition":
            return (conditions or {})[arg]
        values = [_rule_value(a, params, conditions) for a in arg]
        return {"Fn::Equals": lambda v: v[0] == v[1], "Fn::Not": lambda v: not v[0], "Fn::And": all,
                "Fn::Or": any}[fn](values)
    return expr


def rules_refuse(params: dict[str, str]) -> list[str]:
    """The AssertDescriptions of the template's Rules that ``params`` (defaults filled in) fail."""
    tpl = sam_template()
    values = parameter_values(params)
    failed = []
    for rule in tpl.get("Rules", {}).values():
        if "RuleCondition" in rule and not _rule_value(rule["RuleCondition"], values):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not _rule_value(a["Assert"], values)]
    return failed


def test_url_callbacks_need_a_notify_key_or_a_token():
    job = {"ScheduleId": "20001"}
    [refused] = rules_refuse({**job, "NotifyType": "URL"})
    assert "NotifyKey" in refused
    assert rules_refuse({**job, "NotifyType": "URL", "NotifyKey": "k"}) == []
    assert rules_refuse({**job, "NotifyType": "URL", "CallbackToken": "t"}) == []
    assert rules_refuse({**job, "NotifyType": "AWS-SQS"}) == []  # queue messages are sent with the MPS key's IAM user


def test_a_stack_without_schedule_id_or_routes_is_refused_before_it_deploys():
    token = {"CallbackToken": "t"}
    [refused] = rules_refuse(token)
    assert "ScheduleId" in refused and "Routes" in refused
    assert rules_refuse({**token, "ScheduleId": "20001"}) == []
    assert rules_refuse({**token, "Routes": '[{"name": "all", "schedule_id": 20001}]'}) == []
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
    [schedule] = [r for r in res.values() if r["Type"] == "AWS::Scheduler::Schedule"
                  and "CompactFunction" in json.dumps(r["Properties"]["Target"])]
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


def test_env_json_overrides_only_declared_variables_and_runs_the_functions_on_the_local_stack(tmp_path):
    """`python3 tasks.py stack` + `sam local invoke --env-vars env.json`: SAM overrides only variables the template
    declares, so each one env.json sets must be declared; and with the stack's endpoints in place of
    host.docker.internal, the functions run on what the stack set up (its secrets and buckets)."""
    import os
    import signal

    from mpslocal.container import FunctionContainer
    from tests.conftest import furl_event, load_event, resign

    tpl = sam_template()
    declared_globally = set(tpl["Globals"]["Function"]["Environment"]["Variables"])
    env_json = json.loads((ROOT / "env.json").read_text())
    assert set(env_json) == {"SubmitFunction", "ArchiveFunction", "CompactFunction"}
    for fn, variables in env_json.items():
        declared = declared_globally | set(tpl["Resources"][fn]["Properties"]["Environment"]["Variables"])
        assert set(variables) <= declared, (fn, set(variables) - declared)
    tasks = subprocess.Popen([sys.executable, str(ROOT / "tasks.py"), "stack", "--host", "127.0.0.1",
                              "--moto-port", "0", "--mps-port", "0"], stdout=subprocess.PIPE, text=True,
                             cwd=ROOT, start_new_session=True)
    try:
        assert tasks.stdout is not None
        ready = tasks.stdout.readline()
        moto, mps = re.findall(r"http://127\.0\.0\.1:\d+", ready)
        assert ready.startswith("ready:") and "host.docker.internal:host-gateway" in tasks.stdout.readline()

        def local(variables: dict[str, str]) -> dict[str, str]:
            text = json.dumps(variables).replace("http://host.docker.internal:5055", moto)
            return {**json.loads(text.replace("http://host.docker.internal:5056", mps)),
                    "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_DEFAULT_REGION": "us-east-1"}

        submit = FunctionContainer("submit-sam-local", ROOT / "functions/submit/app.py",
                                   local(env_json["SubmitFunction"]), tmp_path / "submit.log")
        archive = FunctionContainer("archive-sam-local", ROOT / "functions/archive/app.py",
                                    local(env_json["ArchiveFunction"]), tmp_path / "archive.log")
        try:
            assert submit.invoke(load_event("s3_put.json"))["submitted"] == 1
            body = resign(json.loads(load_event("furl_callback.json")["body"]),
                          key=env_json["ArchiveFunction"]["MPS_NOTIFY_KEY"])
            assert archive.invoke(furl_event(body))["statusCode"] == 200
        finally:
            submit.close()
            archive.close()
    finally:
        os.killpg(tasks.pid, signal.SIGINT)
        tasks.wait(20)


def sam_cli() -> Path:
    """``sam`` from aws-sam-cli (``dev/sam-requirements.txt``), in its own environment ``.venv-sam/`` (its pins
    conflict with the dev environment's boto3), made once and again only when that file changes."""
    import hashlib
    import venv

    requirements = ROOT / "dev" / "sam-requirements.txt"
    env_dir = ROOT / ".venv-sam"
    sam, stamp = env_dir / "bin" / "sam", env_dir / ".requirements.sha256"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()
    if not sam.exists() or not stamp.exists() or stamp.read_text() != digest:
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q", "install",
                        "-r", str(requirements)], check=True, timeout=900)
        stamp.write_text(digest)
    return sam


@pytest.mark.timeout(1200)
def test_sam_validate_lint_passes():
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(AWS_DEFAULT_REGION="us-east-1", SAM_CLI_TELEMETRY="0")
    out = subprocess.run([str(sam_cli()), "validate", "--lint", "--template", str(TEMPLATE)], capture_output=True,
                         text=True, timeout=300, env=env, cwd=ROOT)
    assert out.returncode == 0 and "is a valid SAM Template" in out.stdout + out.stderr, out.stdout + out.stderr


def test_vod_functions_exist_only_in_their_mode_push_behind_a_url_pull_one_at_a_time_every_minute(cfn):
    off = resolved(cfn, {})["Resources"]
    assert not {n for n in off if n.startswith("Vod")}
    push = resolved(cfn, {"VodMode": "Push"})
    assert "VodCallbackFunction" in push["Resources"] and "VodPollerFunction" not in push["Resources"]
    assert push["Outputs"]["VodCallbackUrl"]["Value"] == {"Fn::GetAtt": ["VodCallbackFunctionUrl", "FunctionUrl"]}
    pull = resolved(cfn, {"VodMode": "Pull"})["Resources"]
    assert "VodPollerFunction" in pull and "VodCallbackFunction" not in pull
    poller = pull["VodPollerFunction"]["Properties"]
    assert poller["ReservedConcurrentExecutions"] == 1
    [rule] = [r["Properties"] for r in pull.values() if r["Type"] == "AWS::Scheduler::Schedule"
              and "VodPollerFunction" in json.dumps(r)]
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    env = poller["Environment"]["Variables"]
    assert {"ARCHIVE_URI", "VOD_ENDPOINT", "VOD_SUB_APP_ID", "VOD_ROUTES", "MPS_CREDENTIALS_SECRET_ARN"} <= set(env)
    # the handler the template names reads a Scheduler invocation as a poll (events/scheduler_vod.json)
    assert json.loads(rule["Target"]["Input"]) == json.loads((ROOT / "events/scheduler_vod.json").read_text())
    statements = [st for pol in pull["VodPollerFunctionRole"]["Properties"]["Policies"]
                  for st in pol["PolicyDocument"]["Statement"]]
    writes = [st for st in statements if "s3:PutObject" in json.dumps(st["Action"])]
    assert all("/claims/" in json.dumps(st["Resource"]) or "/event_type=" in json.dumps(st["Resource"])
               for st in writes)
