"""Azure OpenAI as the judge: the SDK's Azure client and variables, deployment = --judge-model."""
from __future__ import annotations

import json
import os
from pathlib import Path

from support.answer_dirs import answer_dir
from support.fake_batch import FakeBatchServer

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"
KEY = "azure-key-SECRET-0123456789"


def _env(server: FakeBatchServer, **over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    env.update(AZURE_OPENAI_ENDPOINT=f"http://127.0.0.1:{server.port}",
               AZURE_OPENAI_API_KEY=KEY, OPENAI_API_VERSION="2024-10-21", **over)
    return env


def test_azure_judge_sync_and_batch_by_deployment_comparable_by_served_model(mt_bench, tmp_path):
    d = answer_dir(tmp_path)
    with FakeBatchServer("judge") as server:
        server.served_model = {"my-gpt4": "gpt-4-0613"}
        env = _env(server)
        sync = mt_bench("judge", "--data-dir", str(d), "--judge-model", "my-gpt4", "--first-n", "2",
                        "--parallel", "2", env=env)
        assert sync.returncode == 0, sync.stderr
        chat = [p for p in server.paths if "chat/completions" in p]
        assert len(chat) == 4 and all(
            p.startswith("POST /openai/deployments/my-gpt4/chat/completions?api-version=2024-10-21")
            for p in chat)
        batch = mt_bench("judge", "--data-dir", str(d), "--judge-model", "my-gpt4", "--first-n", "4",
                         "--batch", "--batch-poll-interval", "0.01", env=env)
        assert batch.returncode == 0, batch.stderr
        assert any(p.startswith("POST /openai/files?api-version=") for p in server.paths)
        assert any(p.startswith("POST /openai/batches?api-version=") for p in server.paths)
        lines = [json.loads(x) for x in server.files["file-0001"].decode().splitlines()]
        assert len(lines) == 4 and {x["url"] for x in lines} == {"/chat/completions"}
        assert {x["body"]["model"] for x in lines} == {"my-gpt4"}
        shown = mt_bench("show", "--data-dir", str(d), "--judge-model", "my-gpt4", "--json", env=env)
    rows = [json.loads(x) for x in (d / "model_judgment/my-gpt4_single.jsonl").read_text().split("\n") if x]
    assert len(rows) == 8 and {r["judge"][0] for r in rows} == {"my-gpt4"}
    assert {r["served_model"] for r in rows} == {"gpt-4-0613"}
    result = json.loads(shown.stdout)
    assert result["comparable"] is True and result["served_by"] == ["gpt-4-0613"]
    for out in (sync, batch, shown):
        assert KEY not in out.stdout + out.stderr


def test_azure_without_its_api_version_is_a_one_line_error(mt_bench, tmp_path):
    with FakeBatchServer("judge") as server:
        env = _env(server)
        del env["OPENAI_API_VERSION"]
        r = mt_bench("judge", "--data-dir", str(answer_dir(tmp_path)), "--first-n", "1", env=env)
    assert r.returncode == 2 and "OPENAI_API_VERSION is not set" in r.stderr
    assert r.stderr.strip().count("\n") == 0 or "error:" in r.stderr.splitlines()[-1]
    assert server.total == 0
