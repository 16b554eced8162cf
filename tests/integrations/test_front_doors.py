"""One judging job behind every front door: `mt-bench judge` + `show`, the evaluate metric,
`mt-bench calibrate` and the inspect task, fed the same bench folder whose judge prompts are not
FastChat's, give the same label and the same numbers (one judge: a real local HTTP server).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.inspect_helpers import MockPair, read_jsonl, require_inspect, server_judge

require_inspect()

import pytest
from inspect_ai import eval as inspect_eval
from inspect_ai.model import get_model
from support.fake_openai import FakeOpenAI

from mt_bench_task.core.bench import dataset_path, packaged_judge_prompts
from mt_bench_task.core.judge_spec import not_comparable_label
from mt_bench_task.integrations import inspect_task, metric
from mt_bench_task.judging.execute import SendOptions
from mt_bench_task.outputs.calibration import CalibrationRun, run_calibration

pytestmark = pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated")
SUBSET = list(range(81, 89))  # the first 8 questions: writing
LABEL = not_comparable_label("gpt-4")


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every CLI call of this module runs with."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def _bench_folder(root: Path) -> Path:
    """MT-bench's own questions with one judge prompt reworded: gpt-4 judging is then not
    comparable with published MT-bench, whichever door it comes through."""
    folder = root / "mt_bench_reworded"
    folder.mkdir()
    shutil.copyfile(dataset_path() / "data" / "question.jsonl", folder / "question.jsonl")
    prompts = read_jsonl(packaged_judge_prompts())
    for p in prompts:
        if p["name"] == "single-v1":
            p["system_prompt"] += " Be strict."
    (folder / "judge_prompts.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    return folder


def test_cli_metric_calibrate_and_inspect_agree_on_a_bench_with_other_prompts(mt_bench, tmp_path):
    folder = _bench_folder(tmp_path)
    with FakeOpenAI(responder=server_judge) as server:
        # inspect: mockllm answers, the grader is the local server
        mocks = MockPair()
        model, _ = mocks.models()
        grader = get_model("openai/gpt-4", base_url=server.url, api_key="sk-test", memoize=False)
        log = inspect_eval(inspect_task.mt_bench(bench=str(folder)), model=model,
                           model_roles={"grader": grader}, log_dir=str(tmp_path / "logs"),
                           display="none", sample_id=SUBSET)[0]
        assert log.status == "success", log.error
        inspect_metrics = {k: v.value for k, v in log.results.scores[0].metrics.items()}
        imported = tmp_path / "imported"
        p = mt_bench("import-inspect", log.location, "--data-dir", str(imported))
        assert p.returncode == 0, p.stderr

        # the CLI: the same answers, judged in the bench folder
        shutil.copytree(imported / "model_answer", folder / "model_answer")
        p = mt_bench("judge", "--data-dir", str(folder), "--judge-model", "gpt-4", "--first-n",
                     str(len(SUBSET)), "--openai-api-base", server.url, "--parallel", "4")
        # question 81's answers are never rated: judgments without a rating make the run exit 1
        assert p.returncode == 1 and "judgments have no rating (score -1" in p.stderr, p.stderr
        assert f"NOTE: {LABEL}" in p.stderr
        show = mt_bench("show", "--data-dir", str(folder), "--json")
        assert show.returncode == 0, show.stderr
        shown = json.loads(show.stdout)
        assert f"NOTE: {LABEL}" in show.stderr and shown["comparable"] is False

        # the metric: the same answers, the folder as its bench
        answers = {r["question_id"]: r["choices"][0]["turns"]
                   for r in read_jsonl(folder / "model_answer" / "model.jsonl")}
        questions = [q for q in read_jsonl(folder / "question.jsonl") if q["question_id"] in SUBSET]
        settings = metric.JudgeSettings(judge_model="gpt-4", base_url=server.url,
                                        api_key="sk-test", bench=folder, parallel=4)
        result = metric.compute([answers[q["question_id"]] for q in questions], questions,
                                judge=settings, model_id="model")

        # calibrate: the official answers, judged with the folder's prompts
        calibration = run_calibration(CalibrationRun(folder, "gpt-4", base_url=server.url,
                                                     models=("gpt-4",),
                                                     send=SendOptions(parallel=4)))

    m = shown["models"]["model"]
    assert (result["label"], result["comparable"]) == (LABEL, False)
    assert calibration.label == LABEL
    assert result["score"] == m["average"] == inspect_metrics["overall"]
    assert result["turn_1"] == m["turn_1"] == inspect_metrics["turn_1"]
    assert result["turn_2"] == m["turn_2"] == inspect_metrics["turn_2"]
    # inspect's records, imported, carry the same judge identity and the same label in show
    again = mt_bench("show", "--data-dir", str(imported), "--json")
    assert again.returncode == 0 and f"NOTE: {not_comparable_label('gpt-4')}" in again.stderr
    assert json.loads(again.stdout)["models"]["model"]["average"] == m["average"]
    assert calibration.output is not None
    assert {r["fastchat_prompts"] for r in read_jsonl(calibration.output)} == {False}
