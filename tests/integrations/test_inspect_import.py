"""`mt-bench import-inspect`: the `inspect eval` command line end to end, re-imports, and bad logs
(exit 2, one line, nothing written). `inspect eval` in a subprocess, a real local OpenAI-compatible server."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.inspect_helpers import (
    MockPair,
    answer_text,
    read_jsonl,
    require_inspect,
    server_judge,
)

require_inspect()

import pytest
from inspect_ai import Task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.log import read_eval_log
from inspect_ai.model import get_model
from inspect_ai.scorer import match
from inspect_ai.solver import generate
from support.fake_openai import FakeOpenAI

from mt_bench_task.integrations import inspect_task

# inspect's own retry code (not ours) warns on every model call in this version
pytestmark = pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated")
ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every CLI call of this module runs with."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def _server_responder(req: dict) -> str:
    """One server for both roles: the model under test answers, the grader judges."""
    if req["model"] == "gpt-4":
        return server_judge(req)
    return answer_text(req["messages"], req.get("temperature"))


@pytest.mark.slow  # `inspect eval` and mt-bench in subprocesses (~15 s each): out of the fast loop
@pytest.mark.parametrize("spec", ["mt_bench_task/integrations/inspect_task.py", "mt_bench_task/mt_bench"])
def test_inspect_eval_command_line_then_import_then_show(mt_bench, tmp_path, spec):
    """The file (from a checkout) and the registered name (installed package, any cwd)."""
    logs = tmp_path / "logs"
    with FakeOpenAI(responder=_server_responder) as server:
        # the model under test as inspect reaches a vLLM-style server; the grader as OpenAI's
        env = {**os.environ, "OPENAI_BASE_URL": server.url, "OPENAI_API_KEY": "sk-test",
               "LOCAL_BASE_URL": server.url, "LOCAL_API_KEY": "sk-test"}
        p = subprocess.run([str(Path(sys.executable).parent / "inspect"), "eval",
                            spec, "--model", "openai-api/local/my-model",
                            "--model-role", "grader=openai/gpt-4", "--limit", "3",
                            "--log-dir", str(logs), "--display", "none"],
                           check=False, cwd=ROOT if spec.endswith(".py") else tmp_path, env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        models = [r["model"] for r in server.requests]
    assert models.count("my-model") == 6 and models.count("gpt-4") == 6  # 3 questions x 2 turns
    log_file = next(logs.glob("*.eval"))
    assert read_eval_log(str(log_file), header_only=True).status == "success"
    d = tmp_path / "data"
    p = mt_bench("import-inspect", str(log_file), "--data-dir", str(d))
    assert p.returncode == 0, p.stderr
    assert "--judge-model gpt-4" in p.stdout
    answers = read_jsonl(d / "model_answer/my-model.jsonl")
    assert [a["question_id"] for a in answers] == [81, 82, 83]
    assert all(len(a["choices"][0]["turns"]) == 2 for a in answers)
    shown = mt_bench("show", "--data-dir", str(d), "--json")
    assert shown.returncode == 0, shown.stderr
    m = json.loads(shown.stdout)["models"]["my-model"]
    metrics = read_eval_log(str(log_file)).results.scores[0].metrics
    assert metrics["overall"].value == m["average"] and metrics["turn_1"].value == m["turn_1"]


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_reimport_replaces_this_models_rows_and_keeps_other_models(mt_bench, tmp_path):
    mocks = MockPair()
    model, grader = mocks.models()
    log = inspect_eval(inspect_task.mt_bench(), model=model, model_roles={"grader": grader}, limit=4,
                       log_dir=str(tmp_path / "logs"), display="none")[0]
    d = tmp_path / "data"
    assert mt_bench("import-inspect", log.location, "--data-dir", str(d))[0] == 0
    jfile = d / "model_judgment/mockllm__gpt-4_single.jsonl"
    afile = d / "model_answer/model.jsonl"
    first_answers = afile.read_bytes()
    other = {**read_jsonl(jfile)[0], "model": "other-model"}
    with open(jfile, "a", encoding="utf-8") as f:
        f.write(json.dumps(other) + "\n")
    assert mt_bench("import-inspect", log.location, "--data-dir", str(d))[0] == 0
    rows = read_jsonl(jfile)
    assert sum(r["model"] == "other-model" for r in rows) == 1
    assert sum(r["model"] == "model" for r in rows) == 8  # 4 questions x 2 turns, not doubled
    assert afile.read_bytes() == first_answers
    rc, out, _ = mt_bench("import-inspect", log.location, "--data-dir", str(d),
                       "--model-id", "renamed")
    assert rc == 0 and (d / "model_answer/renamed.jsonl").is_file() and "renamed.jsonl" in out


def _assert_refused(mt_bench, log: str, d: Path, words: str) -> None:
    rc, out, err = mt_bench("import-inspect", log, "--data-dir", str(d))
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mt-bench import-inspect: error: "), err
    assert words in lines[0] and "Traceback" not in err and out == ""
    assert not d.exists()


def test_a_log_of_another_task_is_refused(mt_bench, tmp_path):
    mocks = MockPair()
    model = get_model("mockllm/model", custom_outputs=mocks.model, memoize=False)
    other = Task(dataset=[Sample(input="Say x", target="x")], solver=generate(), scorer=match(),
                 name="not_mt_bench")
    log = inspect_eval(other, model=model, log_dir=str(tmp_path / "logs"), display="none")[0]
    d = tmp_path / "data"
    _assert_refused(mt_bench, log.location, d, "not a log of the mt_bench task")


def test_unreadable_or_missing_logs_are_refused(mt_bench, tmp_path):
    d = tmp_path / "data"
    for name, content in (("garbage.eval", b"not a zip"), ("empty.json", b"{}"),
                          ("text.json", b"hello")):
        (tmp_path / name).write_bytes(content)
        _assert_refused(mt_bench, str(tmp_path / name), d, name)
    _assert_refused(mt_bench, str(tmp_path / "none.eval"), d, "file not found")


def test_a_run_with_epochs_is_refused(mt_bench, tmp_path):
    model, grader = MockPair().models()
    log = inspect_eval(inspect_task.mt_bench(), model=model, model_roles={"grader": grader}, limit=1, epochs=2,
                       log_dir=str(tmp_path / "logs"), display="none")[0]
    assert log.status == "success"
    _assert_refused(mt_bench, log.location, tmp_path / "data", "2 epochs")


def test_a_run_whose_samples_all_failed_is_refused(mt_bench, tmp_path):
    mocks = MockPair()
    model, _ = mocks.models()

    def broken(*args):
        raise RuntimeError("judge down")

    grader = get_model("mockllm/gpt-4", custom_outputs=broken, memoize=False)
    log = inspect_eval(inspect_task.mt_bench(), model=model, model_roles={"grader": grader}, limit=2,
                       log_dir=str(tmp_path / "logs"), display="none")[0]
    assert log.status == "error"
    d = tmp_path / "data"
    _assert_refused(mt_bench, log.location, d, "no scored mt_bench samples")


def test_the_cli_does_not_import_inspect():
    code = ("import sys, mt_bench_task.cli.main as c; c.build_parser().parse_args(['show']); "
            "print('inspect_ai' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True,
                       cwd=ROOT)
    assert p.stdout.strip() == "False", p.stderr
