"""The evaluate metric `mt_bench_judge` (metrics/mt_bench_judge, mt_bench_task.integrations.metric/.register).

The judge is a real local HTTP server (tests/support/fake_openai.py) whose verdicts follow markers in the
answers, so every expected number below is derived by hand. evaluate is only imported in fresh
subprocesses, each with an isolated HF_HOME / HF_MODULES_CACHE and the offline switches set.
"""
from __future__ import annotations

import ast
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from support.fake_openai import FakeOpenAI

from mt_bench_task.core import data
from mt_bench_task.core.bench import load_bench, official_answers_dir
from mt_bench_task.core.errors import DataError
from mt_bench_task.integrations import metric, register

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "metrics" / "mt_bench_judge" / "mt_bench_judge.py"
QIDS = (81, 82, 111, 131)  # writing, writing, math (judged with the reference), extraction
# single: "<t1:k>" / "<t2:k>" is the rating the fake judge gives that turn; "none" = no rating
SINGLE = {81: ["Aloha <t1:8>", "Rewritten <t2:6>"], 82: ["Dear boss <t1:4>", "Critique <t2:none>"],
          111: ["Area is 3 <t1:10>", "Circle <t2:2>"], 131: ["a, b <t1:9>", "json <t2:7>"]}
# pairwise: the marker is the answer's strength (no marker = 5, e.g. the official baseline);
# "<pos>": the judge always says [[A]] (position bias); "<err>": no verdict at all
PAIR = {81: ["<t1:8>", "<t2:5>"], 82: ["<t1:2>", "<t2:9>"], 111: ["<t1:7>", "<t2:3> <pos>"],
        131: ["<t1:5>", "<t2:1> <err>"]}
EXPECTED_SINGLE = {"score": 46 / 7, "turn_1": (8 + 4 + 10 + 9) / 4, "turn_2": (6 + 2 + 7) / 3,
                   "categories": {"writing": 6.0, "math": 6.0, "extraction": 8.0},
                   "n": 7, "n_failed": 1}


def rates(win: int, loss: int, tie: int, consistency: float, n_failed: int = 0) -> dict:
    n = win + loss + tie
    return {"win": win, "loss": loss, "tie": tie, "win_rate": win / n, "loss_rate": loss / n,
            "win_rate_adjusted": (win + tie / 2) / n, "consistency": consistency, "n": n,
            "n_failed": n_failed}


# 81: T1 win, T2 tie; 82: T1 loss, T2 win; 111: T1 win, T2 inconsistent (tie); 131: T1 tie, T2 error
EXPECTED_PAIR = {**rates(3, 1, 3, 6 / 7, 1), "turn_1": rates(2, 1, 1, 1.0),
                 "turn_2": rates(1, 0, 2, 2 / 3, 1),
                 "categories": {"writing": rates(2, 1, 1, 1.0), "math": rates(1, 0, 1, 0.5),
                                "extraction": rates(0, 0, 1, 1.0, 1)}}


def marker_judge(req: dict[str, Any]) -> str:
    system = req["messages"][0]["content"]
    user = req["messages"][-1]["content"]
    if "two AI assistants" not in system:  # single grading; a turn-2 prompt holds both turns
        found = re.search(r"<t2:(\w+)>", user) or re.search(r"<t1:(\w+)>", user)
        rating = found.group(1) if found else "5"
        return "No rating from me." if rating == "none" else f"Fine answer. Rating: [[{rating}]]"
    if "<err>" in user:
        return "I cannot decide."
    if "<pos>" in user:
        return "[[A]]"
    a, b = user.split("Assistant B", 1)
    sa, sb = (_strength(part) for part in (a, b))
    return "[[A]]" if sa > sb else "[[B]]" if sb > sa else "[[C]]"


def _strength(part: str) -> int:
    found = re.search(r"<t2:(\d+)>", part) or re.search(r"<t1:(\d+)>", part)
    return int(found.group(1)) if found else 5


def questions() -> list[dict[str, Any]]:
    by_id = {q.question_id: q.to_dict() for q in load_bench().questions}
    return [by_id[i] for i in QIDS]


@pytest.fixture(scope="module")
def server():
    with FakeOpenAI(responder=marker_judge) as s:
        yield s


@pytest.fixture(scope="module")
def hf_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("hf_home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "OPENAI_"))}
    env.update(HF_HOME=str(home), HF_MODULES_CACHE=str(home / "modules"), HF_HUB_OFFLINE="1",
               HF_EVALUATE_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def run_child(code: str, params: dict, cwd: Path, env: dict[str, str], out: Path) -> dict:
    params = {**params, "out": str(out)}
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(params)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)  # a stop for a hung child only
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(out.read_text())


CHILD_BY_PATH = r"""
import inspect, json, sys
p = json.loads(sys.argv[1])
import evaluate
kw = dict(base_url=p["url"], api_key="sk-test", parallel=4, keep_in_memory=True)
single = evaluate.load("metrics/mt_bench_judge", "single", **kw)
out = {"name": single.name, "judge": repr(single.judge)}
params = inspect.signature(type(single)._compute).parameters.values()
out["var_keyword"] = any(x.kind is x.VAR_KEYWORD for x in params)
out["single"] = single.compute(predictions=p["single"], references=p["refs"], return_judgments=True)
batched = evaluate.load("metrics/mt_bench_judge", "single", **kw)
for i in (0, 2):
    batched.add_batch(predictions=p["single"][i:i + 2], references=p["refs"][i:i + 2])
out["batched"] = batched.compute()
pair = evaluate.load("metrics/mt_bench_judge", "pairwise", **kw)
out["pairwise"] = pair.compute(predictions=p["pair"], references=p["refs"], model_id="my-model",
                               return_judgments=True)
try:
    single.compute(predictions=["a bare string"], references=p["refs"][:1])
except ValueError as e:
    out["bare_string"] = str(e)
try:
    evaluate.load("metrics/mt_bench_judge", "pairwize")
except ValueError as e:
    out["bad_config"] = str(e)
json.dump(out, open(p["out"], "w"))
"""

CHILD_BARE_NAME = r"""
import doctest, json, sys
p = json.loads(sys.argv[1])
import evaluate
out = {}
try:
    evaluate.load("mt_bench_judge")
except FileNotFoundError:
    out["before_registration"] = "FileNotFoundError"
from mt_bench_task.integrations.register import register_metric
out["registered"] = str(register_metric())
m = evaluate.load("mt_bench_judge", "single", base_url=p["url"], keep_in_memory=True)
module = sys.modules[type(m).__module__]
out["module_file"] = module.__file__
out["single"] = m.compute(predictions=p["single"], references=p["refs"])
res = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
out["doctest"] = [res.attempted, res.failed]
json.dump(out, open(p["out"], "w"))
"""


@pytest.fixture(scope="module")
def by_path(server: FakeOpenAI, hf_env: dict[str, str], tmp_path_factory) -> dict:
    params = {"url": server.url, "refs": questions(), "single": [SINGLE[i] for i in QIDS],
              "pair": [PAIR[i] for i in QIDS]}
    return run_child(CHILD_BY_PATH, params, ROOT, hf_env, tmp_path_factory.mktemp("p") / "o.json")


@pytest.fixture(scope="module")
def by_name(server: FakeOpenAI, hf_env: dict[str, str], tmp_path_factory) -> dict:
    cwd = tmp_path_factory.mktemp("elsewhere")
    env = {**hf_env, "OPENAI_API_KEY": "sk-from-env", "HF_MODULES_CACHE": str(cwd / "modules")}
    params = {"url": server.url, "refs": questions(), "single": [SINGLE[i] for i in QIDS]}
    return run_child(CHILD_BARE_NAME, params, cwd, env, cwd / "out.json")


def assert_close(got: Any, want: Any, path: str = "") -> None:
    if isinstance(want, dict):
        assert isinstance(got, dict), path
        for k, v in want.items():
            assert k in got, f"{path}.{k} missing"
            assert_close(got[k], v, f"{path}.{k}")
    else:
        assert got == pytest.approx(want), f"{path}: {got} != {want}"


# ---- loading ----
def test_load_by_path_single_values_by_hand(by_path: dict, server: FakeOpenAI) -> None:
    assert by_path["name"] == "mt_bench_judge"
    res = by_path["single"]
    assert_close(res, EXPECTED_SINGLE)
    lo, hi = res["ci95"]
    assert lo <= res["score"] <= hi
    rows = res["judgments"]
    assert len(rows) == 8 and {r["model"] for r in rows} == {"model"}
    assert {r["judge"][1] for r in rows if r["question_id"] == 111} == {
        "single-math-v1", "single-math-v1-multi-turn"}
    assert "sk-test" not in by_path["judge"]  # the key never shows
    assert "Bearer sk-test" in server.auth_headers


def test_load_by_path_pairwise_values_by_hand(by_path: dict) -> None:
    res = by_path["pairwise"]
    assert_close(res, EXPECTED_PAIR)
    assert set(res["categories"]) == {"writing", "math", "extraction"}
    rows = res["judgments"]
    assert len(rows) == 8
    assert {(r["model_1"], r["model_2"]) for r in rows} == {("my-model", "gpt-3.5-turbo")}
    official = data.load_answers(official_answers_dir(), "gpt-3.5-turbo", official_answers_dir())[81].turns[0]
    first = next(r for r in rows if r["question_id"] == 81 and r["turn"] == 1)
    assert official in first["g1_user_prompt"]  # the default baseline: packaged official answers


def test_add_batch_then_compute(by_path: dict) -> None:
    assert by_path["batched"] == {k: v for k, v in by_path["single"].items() if k != "judgments"}


@pytest.mark.slow  # end to end over subprocesses; the fast loop covers the feature
def test_load_by_bare_name_from_other_dir(by_name: dict, by_path: dict, server: FakeOpenAI) -> None:
    assert by_name["before_registration"] == "FileNotFoundError"  # the cache really is isolated
    assert "evaluate-metric--mt_bench_judge" in by_name["module_file"]
    assert by_name["registered"].startswith(str(Path(by_name["module_file"]).parents[4]))
    assert by_name["single"] == {k: v for k, v in by_path["single"].items() if k != "judgments"}
    assert "Bearer sk-from-env" in server.auth_headers  # api_key defaults to $OPENAI_API_KEY


@pytest.mark.slow  # a fresh HF cache in a subprocess; test_load_by_path_* load the metric in the fast loop
def test_doctests_run_offline(by_name: dict) -> None:
    attempted, failed = by_name["doctest"]
    assert attempted >= 10 and failed == 0


def test_compute_has_explicit_kwargs(by_path: dict) -> None:
    assert by_path["var_keyword"] is False
    tree = ast.parse(SCRIPT.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    assert set(methods) == {"__init__", "_info", "_compute"}
    assert methods["_compute"].args.kwarg is None
    assert methods["_compute"].end_lineno - methods["_compute"].lineno < 30
    assert len(SCRIPT.read_text().splitlines()) <= 150


# ---- same numbers as `mt-bench show --json` ----
@pytest.mark.parametrize("config", ["single", "pairwise"])
def test_same_numbers_as_show_json(mt_bench, by_path: dict, tmp_path: Path, config: str) -> None:
    res = by_path[config]
    f = tmp_path / "judgments.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in res["judgments"]))
    mode = ["--mode", "single"] if config == "single" else ["--mode", "pairwise-baseline",
                                                            "--baseline-model", "gpt-3.5-turbo"]
    proc = mt_bench("show", "--json", "--input-file", f, *mode, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout.strip().splitlines()[-1])
    if config == "single":
        m = shown["models"]["model"]
        assert (res["score"], res["turn_1"], res["turn_2"]) == (m["average"], m["turn_1"],
                                                                 m["turn_2"])
        assert (res["categories"], res["ci95"]) == (m["categories"], m["ci95"])
        assert (res["n"], res["n_failed"]) == (m["n_turn_1"] + m["n_turn_2"], shown["rows_dropped"])
    else:
        m = shown["models"]["my-model"]
        assert {k: res[k] for k in metric.RATE_KEYS} == m
        assert res["consistency"] == shown["consistency"]


# ---- inputs ----
def test_bare_string_rejected_by_features(by_path: dict) -> None:
    assert "expected a list" in by_path["bare_string"]
    assert "pairwise" in by_path["bad_config"]


@pytest.mark.parametrize("predictions, message", [
    (["a bare string"], "must be a list of turn texts"),
    ([["only one turn"]], "has 1 turn(s) but question 81 has 2"),
    ([["a", 3]], "strings only"),
    ([["a", "b"], ["c", "d"]], "2 predictions for 1 references"),
])
def test_wrong_prediction_shapes_rejected(predictions: list, message: str) -> None:
    qs = metric.to_questions(questions()[:1])
    with pytest.raises(ValueError, match=re.escape(message)):
        metric.to_answers(predictions, qs, "model")


def test_wrong_references_rejected() -> None:
    with pytest.raises(ValueError, match="question record"):
        metric.to_questions(["What is 1+1?"])
    with pytest.raises(ValueError, match="more than once"):
        metric.to_questions(questions()[:1] * 2)
    with pytest.raises(ValueError, match="unknown config"):
        metric.mode_for("pairwise-all")


def test_explicit_baseline_list_or_dict(server: FakeOpenAI) -> None:
    refs = questions()[:1]  # question 81; the model's T1 strength 8, T2 5
    judge = metric.JudgeSettings(base_url=server.url, api_key="sk-test")
    for baseline in ([["<t1:9>", "<t2:5>"]], {81: ["<t1:9>", "<t2:5>"]}):
        res = metric.compute([PAIR[81]], refs, mode="pairwise-baseline", judge=judge,
                             baseline_predictions=baseline, baseline_model="base",
                             return_judgments=True)
        assert_close(res, {**rates(0, 1, 1, 1.0), "turn_1": rates(0, 1, 0, 1.0)})
        assert {r["model_2"] for r in res["judgments"]} == {"base"}
    with pytest.raises(ValueError, match="no answer for question ids"):
        metric.compute([PAIR[81]], refs, mode="pairwise-baseline", judge=judge,
                       baseline_predictions={82: ["x", "y"]})
    with pytest.raises(ValueError, match="must differ"):
        metric.compute([PAIR[81]], refs, mode="pairwise-baseline", judge=judge,
                       model_id="gpt-3.5-turbo")


def test_unreachable_judge_fails_fast() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    judge = metric.JudgeSettings(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-test")
    start = time.monotonic()
    with pytest.raises(DataError, match="cannot reach"):
        metric.compute([SINGLE[81]], questions()[:1], judge=judge)
    assert time.monotonic() - start < 10


# ---- registration ----
def test_register_is_idempotent_and_newest(tmp_path: Path) -> None:
    target = register.register_metric(tmp_path)
    assert target.read_bytes() == SCRIPT.read_bytes()
    assert target.parent.parent.name == "evaluate-metric--mt_bench_judge"
    for d in (tmp_path, tmp_path / "evaluate_modules", target.parent.parent, target.parent):
        assert (d / "__init__.py").is_file()
    older = target.parent.parent / ("0" * 64)
    older.mkdir()
    (older / "mt_bench_judge.py").write_text("# another version, written later\n")
    assert register.register_metric(tmp_path) == target
    assert target.stat().st_mtime > (older / "mt_bench_judge.py").stat().st_mtime


def test_modules_cache_like_evaluate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("HF_MODULES_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    assert register.modules_cache() == Path.home() / ".cache" / "huggingface" / "modules"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert register.modules_cache() == tmp_path / "xdg" / "huggingface" / "modules"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert register.modules_cache() == tmp_path / "hf" / "modules"
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "m"))
    assert register.modules_cache() == tmp_path / "m"
    monkeypatch.setenv(register.NO_REGISTER_ENV, "1")
    assert register.register_quietly() is None and not (tmp_path / "m").exists()


# ---- 2 processes under accelerate: gather_object, then compute on the main process ----
ACCELERATE_SCRIPT = r"""
import json, sys
from accelerate import PartialState
from accelerate.utils import gather_object

p = json.loads(open(sys.argv[1]).read())
state = PartialState(cpu=True)
with state.split_between_processes(list(range(len(p["refs"])))) as shard:
    # "generation": each process answers its shard of the questions
    local = [{"rank": state.process_index, "prediction": p["single"][i], "reference": p["refs"][i]}
             for i in shard]
gathered = gather_object(local)
if state.is_main_process:
    import evaluate

    judge = evaluate.load(p["metric"], "single", base_url=p["url"], api_key="sk-test",
                          keep_in_memory=True)
    result = judge.compute(predictions=[g["prediction"] for g in gathered],
                           references=[g["reference"] for g in gathered])
    json.dump({"result": result, "world": state.num_processes,
               "ranks": [g["rank"] for g in gathered],
               "qids": [g["reference"]["question_id"] for g in gathered]}, open(p["out"], "w"))
state.wait_for_everyone()
state.destroy_process_group()  # without it, gloo aborts a process at exit
"""


@pytest.mark.slow  # two accelerate processes (~15 s)
def test_two_process_accelerate_gather_then_compute(server: FakeOpenAI, hf_env: dict[str, str],
                                                     by_path: dict, tmp_path: Path) -> None:
    script = tmp_path / "distributed_eval.py"
    script.write_text(ACCELERATE_SCRIPT)
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"url": server.url, "refs": questions(),
                                  "out": str(tmp_path / "o.json"),
                                  "single": [SINGLE[i] for i in QIDS],
                                  "metric": str(ROOT / "metrics" / "mt_bench_judge")}))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu",
           "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no",
           "--main_process_port", str(port), str(script), str(params)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=hf_env, capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["world"] == 2 and sorted(set(out["ranks"])) == [0, 1]
    assert out["qids"] == list(QIDS)  # gather_object keeps rank order: the original order
    assert out["result"] == {k: v for k, v in by_path["single"].items() if k != "judgments"}
