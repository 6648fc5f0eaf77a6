"""`mps-triggers deploy scf` against a local SCF/CAM API (dev/mpslocal/tencent_cloud.py: every request checked
against the official models, state kept) and COS in moto: one run creates everything and wires the function URL
into the submit function; --dry-run reads but sends no write, and plans exactly the writes a real run makes; a
second run changes nothing; one changed value updates one function; the tccli payloads are generated from the
same config."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mps_triggers_cli.main import main
from mpslocal.tencent_cloud import TencentCloudApi

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "deploy" / "scf" / "config.example.toml"
PACKAGES = ("mps-triggers-core-layer.zip", "mps-triggers-submit.zip", "mps-triggers-archive.zip",
            "mps-triggers-compact.zip", "mps-triggers-vod.zip")
NOTIFY_KEY, TOKEN = "deploy-test-notify-key", "deploy test token +/="


@pytest.fixture
def cloud(stack, tmp_path, monkeypatch):
    """The fake API (COS objects read from moto), a config and packages in tmp_path; returns (api, run)."""
    cos = stack.cos()
    bucket = "deploy-1250000000"
    stack.boto3("s3").create_bucket(Bucket=bucket)

    def cos_object(name: str, key: str) -> bytes | None:
        try:
            return cos.get_object(Bucket=f"{name}-1250000000", Key=key)["Body"].get_raw_stream().read()
        except Exception:
            return None

    packages = tmp_path / "packages"
    packages.mkdir()
    for name in PACKAGES:
        (packages / name).write_bytes(b"PK\x05\x06" + name.encode() + b"\x00" * 18)
    text = EXAMPLE.read_text().replace('dir = "build/scf"', f'dir = "{packages}"')
    text = text.replace('"replace-with-a-random-notify-key"', '"env:DEPLOY_NOTIFY_KEY"')
    text = text.replace('"replace-with-a-long-random-token"', '"env:DEPLOY_TOKEN"')
    config = tmp_path / "config.toml"
    config.write_text(text)
    with TencentCloudApi(cos_objects=cos_object) as api:
        monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", api.secret_id)
        monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", api.secret_key)
        monkeypatch.setenv("COS_ENDPOINT_URL", stack.moto.url)
        monkeypatch.setenv("DEPLOY_NOTIFY_KEY", NOTIFY_KEY)
        monkeypatch.setenv("DEPLOY_TOKEN", TOKEN)

        def run(*extra: str, capsys=None) -> tuple[int, dict, str]:
            code = main(["deploy", "scf", "--config", str(config), "--endpoint", api.host, "--format", "json",
                         *extra])
            out, err = capsys.readouterr() if capsys else ("", "")
            return code, (json.loads(out) if out.strip() else {}), err

        yield api, run, config, packages
        assert not api.own_errors


def writes_of(doc: dict) -> list[tuple[str, str]]:
    return [(w["service"], w["action"]) for w in doc["writes"]]


def test_one_run_deploys_everything_a_dry_run_plans_the_same_writes_and_a_second_run_changes_nothing(cloud,
                                                                                                     capsys):
    api, run, _, _ = cloud
    code, plan, _ = run("--dry-run", capsys=capsys)
    assert code == 0 and plan["dry_run"] and not api.mutations()  # reads only
    assert plan["function_url"] == "<CreateTrigger.ExtranetUrl>"
    assert NOTIFY_KEY not in json.dumps(plan) and TOKEN not in json.dumps(plan)  # secrets shown as ***
    code, done, _ = run(capsys=capsys)
    assert code == 0 and done["writes"] == plan["writes"]  # exactly the planned writes, in order
    sent = [(s, a) for s, a, _ in api.mutations()]
    assert sent == [w for w in writes_of(done) if w[0] != "cos"]
    assert [a for _, a in writes_of(done)].count("CreateFunction") == 4
    state = api.state
    assert set(state.roles) == {"mps-triggers-submit", "mps-triggers-archive", "mps-triggers-compact",
                                "mps-triggers-vod"}
    assert all(len(ids) == 1 for ids in state.attached.values()) and len(state.attached) == 4
    submit = state.functions["default/mps-triggers-submit"]
    archive = state.functions["default/mps-triggers-archive"]
    [url_trigger] = archive["triggers"].values()
    url = json.loads(url_trigger["TriggerDesc"])["NetConfig"]["ExtranetUrl"]
    env = {v["Key"]: v["Value"] for v in submit["Environment"]["Variables"]}
    assert env["MPS_NOTIFY_URL"] == url == done["function_url"]  # wired in the same run
    assert env["CALLBACK_TOKEN"] == TOKEN and env["MPS_NOTIFY_KEY"] == NOTIFY_KEY
    assert submit["Layers"] == [{"LayerName": "mps-triggers-core", "LayerVersion": 1}]
    assert submit["reserved_mem"] == 2048 and submit["async"] == {"RetryConfig": [{"RetryNum": 2}], "MsgTTL": 86400}
    [cos_trigger] = submit["triggers"].values()
    assert cos_trigger["TriggerName"] == "media-1250000000.cos.ap-guangzhou.myqcloud.com"
    assert json.loads(cos_trigger["TriggerDesc"])["filter"]["Prefix"] == "uploads/"
    assert "MPS trigger" in " ".join(done["console_steps"])
    vod = state.functions["default/mps-triggers-vod"]  # [vod] mode = "pull": a timer, one instance at a time
    [timer] = vod["triggers"].values()
    assert timer["Type"] == "timer" and vod["reserved_mem"] == vod["MemorySize"]
    vod_env = {v["Key"]: v["Value"] for v in vod["Environment"]["Variables"]}
    assert vod_env["MPS_NOTIFY_URL"] == url and vod_env["VOD_SUB_APP_ID"] == "1500000001"
    # again: nothing to do
    before = len(api.mutations())
    code, again, _ = run(capsys=capsys)
    assert code == 0 and again["writes"] == [] and len(api.mutations()) == before
    assert {c["outcome"] for c in again["changes"]} == {"unchanged"} and again["function_url"] == url


def test_one_changed_value_updates_one_function_and_a_new_layer_updates_every_function(cloud, capsys):
    api, run, config, packages = cloud
    assert run(capsys=capsys)[0] == 0
    config.write_text(config.read_text().replace('MPS_OUTPUT_DIR = "/mps-output/"', 'MPS_OUTPUT_DIR = "/out/"'))
    code, doc, _ = run(capsys=capsys)
    assert code == 0 and writes_of(doc) == [("scf", "UpdateFunctionConfiguration")]
    assert doc["writes"][0]["shown"]["FunctionName"] == "mps-triggers-submit"
    env = {v["Key"]: v["Value"] for v in api.state.functions["default/mps-triggers-submit"]["Environment"]["Variables"]}
    assert env["MPS_OUTPUT_DIR"] == "/out/"
    (packages / "mps-triggers-core-layer.zip").write_bytes(b"PK\x05\x06 a new core" + b"\x00" * 18)
    (packages / "mps-triggers-archive.zip").write_bytes(b"PK\x05\x06 new archive code" + b"\x00" * 18)
    code, doc, _ = run(capsys=capsys)
    actions = writes_of(doc)
    assert code == 0 and actions[:2] == [("cos", "PutObject"), ("scf", "PublishLayerVersion")]
    assert actions.count(("scf", "UpdateFunctionConfiguration")) == 4 and ("scf", "UpdateFunctionCode") in actions
    assert all(f["Layers"] == [{"LayerName": "mps-triggers-core", "LayerVersion": 2}]
               for f in api.state.functions.values())


def test_a_bad_config_is_refused_before_any_call_naming_the_key(cloud, capsys):
    api, run, config, packages = cloud
    good = config.read_text()
    config.write_text(good.replace('MPS_SCHEDULE_ID = "20001"', 'MPS_SCHEDULE_ID = "twenty"'))
    code, _, err = run(capsys=capsys)
    assert code == 2 and "submit.environment: MPS_SCHEDULE_ID" in err
    config.write_text(good.replace('input_bucket = "media-1250000000"', 'input_bucket = "media"'))
    code, _, err = run(capsys=capsys)
    assert code == 2 and "submit.input_bucket" in err
    config.write_text(good.replace('notify_key = "env:DEPLOY_NOTIFY_KEY"', 'notify_key = "env:NOT_SET_ANYWHERE"'))
    code, _, err = run(capsys=capsys)
    assert code == 2 and "notify_key" in err and "NOT_SET_ANYWHERE" in err
    assert not api.calls  # refused before any call
    config.write_text(good)
    (packages / "mps-triggers-submit.zip").unlink()
    code, _, err = run(capsys=capsys)
    assert code == 2 and "package-scf --layer" in err
    assert not api.calls


def test_the_tccli_payloads_are_generated_from_the_example_config(tmp_path):
    assert main(["deploy", "scf", "--config", str(EXAMPLE), "--write-tccli", str(tmp_path)]) == 0
    committed = sorted(p.name for p in (ROOT / "deploy/scf/tccli").glob("*.json"))
    assert sorted(p.name for p in tmp_path.glob("*.json")) == committed
    for name in committed:
        generated = json.loads((tmp_path / name).read_text())
        assert generated == json.loads((ROOT / "deploy/scf/tccli" / name).read_text()), name
