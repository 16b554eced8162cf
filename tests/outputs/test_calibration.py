"""`mt-bench calibrate` against real local OpenAI-compatible servers.

One server gives back the official GPT-4 grade of the answer it is shown (identical prompts of
two models get one answer, so not every grade can come back), one gives shifted grades. Every
statistic is recomputed here independently (statistics.correlation, rank by sorting, tau-b by
counting concordant / discordant pairs) from the records the run wrote and the packaged file.
"""
from __future__ import annotations

import itertools
import json
import math
import os
import statistics
from pathlib import Path

import pytest
from support.fake_openai import FakeOpenAI
from support.mock_hub import hub_offline_without_token
from support.official import PKG, SIX, official_grades, prompt_owner

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every CLI call of this module runs with."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _categories() -> dict[int, str]:
    return {r["question_id"]: r["category"]
            for r in _jsonl(PKG / "mt_bench" / "data" / "question.jsonl")}


def _grading_server(models: list[str], shift: int = 0, unrated: int | None = None) -> FakeOpenAI:
    owner, grades = prompt_owner(models), official_grades()

    def respond(req: dict) -> str:
        key = owner[[m["content"] for m in req["messages"] if m["role"] == "user"][-1]]
        if key[1] == unrated:
            return "I will not rate this one."  # no rating: score -1, left out of the pairs
        g = grades[key]
        g = min(10, max(1, g + shift)) if shift else g
        return f"Evaluation: fine. Rating: [[{g}]]"

    return FakeOpenAI(respond)


# ---- the independent computation ----
def _ranks(xs: list[float]) -> list[float]:
    ordered = sorted(xs)
    first = {}
    for i, v in enumerate(ordered):
        first.setdefault(v, i)
    return [first[v] + 1 + (ordered.count(v) - 1) / 2 for v in xs]


def _tau_b(x: list[float], y: list[float]) -> float | None:
    nc = nd = tx = ty = 0
    for (a1, b1), (a2, b2) in itertools.combinations(zip(x, y), 2):
        if a1 == a2 and b1 == b2:
            tx, ty = tx + 1, ty + 1
        elif a1 == a2:
            tx += 1
        elif b1 == b2:
            ty += 1
        elif (a1 - a2) * (b1 - b2) > 0:
            nc += 1
        else:
            nd += 1
    n0 = len(x) * (len(x) - 1) // 2
    if (n0 - tx) * (n0 - ty) == 0:
        return None  # one model, or all means tied: undefined
    return (nc - nd) / math.sqrt((n0 - tx) * (n0 - ty))


def _expected(records: list[dict], models: list[str], judge: str) -> dict:
    off, cats = official_grades(), _categories()
    pairs = [(r["model"], r["question_id"], r["score"], off[(r["model"], r["question_id"], r["turn"])])
             for r in records if r["score"] != -1 and r["model"] in models]
    j, o = [p[2] for p in pairs], [p[3] for p in pairs]

    def means(key_index_fn):
        out = {}
        for k in sorted({key_index_fn(p) for p in pairs}):
            sel = [p for p in pairs if key_index_fn(p) == k]
            mo, mj = statistics.fmean(p[3] for p in sel), statistics.fmean(p[2] for p in sel)
            out[k] = {"official": mo, "judge": mj, "shift": mj - mo}
        return out

    per_model = means(lambda p: p[0])
    names = sorted(per_model)
    return {"judge": judge, "n": len(pairs),
            "pearson": statistics.correlation(j, o),
            "spearman": statistics.correlation(_ranks(j), _ranks(o)),
            "exact": sum(a == b for a, b in zip(j, o)) / len(pairs),
            "within_1": sum(abs(a - b) <= 1 for a, b in zip(j, o)) / len(pairs),
            "mean_shift": statistics.fmean(a - b for a, b in zip(j, o)),
            "kendall_tau_models": _tau_b([per_model[m]["official"] for m in names],
                                         [per_model[m]["judge"] for m in names]),
            "models": per_model, "categories": means(lambda p: cats[p[1]])}


def _assert_equal(got: dict, want: dict) -> None:
    # "map" and "pairs" (the GPT-4-equivalent map): tests/outputs/test_gpt4_equivalent.py
    assert set(got) == set(want) | {"map", "pairs"}
    for k, v in want.items():
        if isinstance(v, dict):
            assert set(got[k]) == set(v), k
            for name, sub in v.items():
                assert got[k][name] == pytest.approx(sub, rel=1e-9, abs=1e-12), (k, name)
        elif isinstance(v, float):
            assert got[k] == pytest.approx(v, rel=1e-9, abs=1e-12), k
        else:
            assert got[k] == v, k


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_calibrate_with_official_grades_all_six_then_resume(mt_bench, tmp_path):
    with _grading_server(SIX, unrated=81) as server:
        dry = mt_bench("calibrate", "--judge-model", "gpt-4o", "--data-dir", str(tmp_path), "--dry-run",
                       env={**os.environ, "OPENAI_API_KEY": ""})
        assert dry.returncode == 0, dry.stderr
        assert "960 judge calls" in dry.stdout and server.total == 0
        assert list(tmp_path.iterdir()) == []  # nothing written before spending

        res = mt_bench("calibrate", "--judge-model", "gpt-4o", "--openai-api-base", server.url,
                       "--parallel", "16", "--data-dir", str(tmp_path), "--json")
        # question 81 is never rated (unrated=81): 12 judgments without a rating, exit 1
        assert res.returncode == 1 and "12 of 960 judgments have no rating" in res.stderr, res.stderr
        assert server.total == 960
        stats = json.loads(res.stdout)
        records = _jsonl(tmp_path / "calibration" / "gpt-4o_single.jsonl")
        assert len(records) == 960
        assert list(records[0]) == ["question_id", "model", "judge", "user_prompt", "judgment",
                                    "score", "turn", "tstamp"]
        want = _expected(records, SIX, "gpt-4o")
        _assert_equal(stats, want)
        assert stats["n"] == 960 - 2 * 6  # question 81 was not rated, both turns, every model
        # identical prompts of two models got one answer: not every grade came back
        assert 0.9 < stats["exact"] < 1 and stats["pearson"] < 1
        saved = json.loads((tmp_path / "calibration" / "gpt-4o_calibration.json").read_text())
        assert saved == stats

        again = mt_bench("calibrate", "--judge-model", "gpt-4o", "--openai-api-base", server.url,
                         "--data-dir", str(tmp_path), "--json")
        assert again.returncode == 0, again.stderr
        assert server.total == 960  # resume: 0 calls
        assert json.loads(again.stdout) == stats
        dry2 = mt_bench("calibrate", "--judge-model", "gpt-4o", "--data-dir", str(tmp_path), "--dry-run")
        assert "960 already done, 0 judge calls" in dry2.stdout


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_calibrate_shifted_judge_subset_and_the_citation(mt_bench, tmp_path):
    models = ["gpt-4", "alpaca-13b", "llama-13b"]
    with _grading_server(models, shift=-2) as server:
        res = mt_bench("calibrate", "--judge-model", "gpt-4o", "--openai-api-base", server.url,
                       "--parallel", "16", "--data-dir", str(tmp_path), "--models", *models)
        assert res.returncode == 0, res.stderr
        assert server.total == 480
    stats = json.loads((tmp_path / "calibration" / "gpt-4o_calibration.json").read_text())
    records = _jsonl(tmp_path / "calibration" / "gpt-4o_single.jsonl")
    _assert_equal(stats, _expected(records, models, "gpt-4o"))
    assert stats["mean_shift"] < 0 and set(stats["models"]) == set(models)
    assert f"over {stats['n']} grades" in res.stdout and "saved:" in res.stdout

    # show cites it next to the judge label, for a run judged by the same judge
    (tmp_path / "model_judgment").mkdir()
    rows = [dict(r, model="mine") for r in records if r["model"] == "gpt-4"]
    (tmp_path / "model_judgment" / "gpt-4o_single.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    shown = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "gpt-4o")
    cite = (f"judged by gpt-4o: not comparable with published MT-bench; calibration vs official "
            f"GPT-4: r = {stats['pearson']:.2f}, shift {stats['mean_shift']:+.2f} over "
            f"{stats['n']} grades")
    assert shown.returncode == 0 and cite in shown.stdout
    as_json = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "gpt-4o", "--json")
    shown_stats = {k: v for k, v in stats.items() if k != "pairs"}  # the pairs stay in the file
    assert json.loads(as_json.stdout)["calibration"] == shown_stats and cite in as_json.stderr
    from mt_bench_task.outputs import report

    (tmp_path / "model_answer").mkdir()
    (tmp_path / "model_answer" / "mine.jsonl").write_text("".join(
        json.dumps({**a, "model_id": "mine"}) + "\n"
        for a in _jsonl(PKG / "official_answers" / "gpt-4.jsonl")))
    assert report.build_payload(tmp_path, "gpt-4o")["calibration"] == {"text": cite,
                                                                      "comparable": False}
    with hub_offline_without_token():
        card = mt_bench("publish", "--repo-id", "someone/mine", "--data-dir", tmp_path,
                        "--judge-model", "gpt-4o", "--dry-run")
    assert card.returncode == 0, card.stderr
    assert cite.split("; ")[1] in card.stdout and "not comparable" in card.stdout


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_metric_calibrate_gives_the_cli_statistics(mt_bench, tmp_path):
    """The evaluate side: same statistics code, same numbers as the CLI on the same server."""
    from mt_bench_task.integrations import metric

    models = ["claude-v1", "llama-13b"]
    with _grading_server(models, shift=1) as server:
        got = metric.calibrate(metric.JudgeSettings(judge_model="gpt-4o", base_url=server.url,
                                                    api_key="sk-test", parallel=16), models)
        assert server.total == 320
        res = mt_bench("calibrate", "--judge-model", "gpt-4o", "--openai-api-base", server.url,
                       "--parallel", "16", "--data-dir", str(tmp_path), "--models", *models, "--json")
    assert res.returncode == 0, res.stderr
    assert got == json.loads(res.stdout)
    records = _jsonl(tmp_path / "calibration" / "gpt-4o_single.jsonl")
    _assert_equal(got, _expected(records, models, "gpt-4o"))
    assert got["mean_shift"] > 0


def test_calibrate_repeats_each_repeat_is_a_pair_and_resumes_per_repeat(mt_bench, tmp_path):
    models = ["llama-13b"]
    common = ["calibrate", "--judge-model", "gpt-4o", "--data-dir", str(tmp_path),
              "--models", *models]
    with _grading_server(models, shift=1) as server:
        res = mt_bench(*common, "--openai-api-base", server.url, "--parallel", "16",
                       "--judge-repeats", "2", "--json")
        assert res.returncode == 0, res.stderr
        assert server.total == 320
        records = _jsonl(tmp_path / "calibration" / "gpt-4o_single.jsonl")
        assert sorted({r["repeat"] for r in records}) == [0, 1] and len(records) == 320
        stats = json.loads(res.stdout)
        _assert_equal(stats, _expected(records, models, "gpt-4o"))
        assert stats["n"] == 320
        again = mt_bench(*common, "--openai-api-base", server.url, "--judge-repeats", "2")
        assert again.returncode == 0 and server.total == 320  # resume: 0 calls
    dry = mt_bench(*common, "--judge-repeats", "3", "--dry-run")
    assert "480 judgments, 320 already done, 160 judge calls" in dry.stdout


def test_the_embedded_judges_packaged_calibration_is_cited_unless_data_dir_has_its_own(mt_bench, tmp_path):
    """`mt-bench calibrate --judge-model default` was measured once and ships with the package:
    show cites it next to the embedded judge's label; a calibration saved in DATA_DIR wins."""
    from mt_bench_task.core.judge_spec import EMBEDDED_JUDGE_NAME
    from mt_bench_task.outputs.calibration_stats import packaged_stats_path

    packaged = json.loads(packaged_stats_path(EMBEDDED_JUDGE_NAME).read_text())
    assert packaged["judge"] == EMBEDDED_JUDGE_NAME and packaged["n"] == 960
    (tmp_path / "model_judgment").mkdir()
    rows = [{"question_id": qid, "model": "mine", "judge": [EMBEDDED_JUDGE_NAME, "single-v1"],
             "user_prompt": "p", "judgment": "j", "score": 5, "turn": 1, "tstamp": 0.0,
             "local_judge": True} for qid in range(81, 91)]
    (tmp_path / "model_judgment" / f"{EMBEDDED_JUDGE_NAME}_single.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    shown = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "default")
    assert shown.returncode == 0, shown.stderr
    cite = (f"calibration vs official GPT-4: r = {packaged['pearson']:.2f}, shift "
            f"{packaged['mean_shift']:+.2f} over 960 grades (measured once, 2026-12-03")
    assert f"judged by {EMBEDDED_JUDGE_NAME}: not comparable with published MT-bench; {cite}" \
        in shown.stdout
    own = dict(packaged, n=12, pearson=0.5, mean_shift=1.0)
    del own["measured"]
    (tmp_path / "calibration").mkdir()
    (tmp_path / "calibration" / f"{EMBEDDED_JUDGE_NAME}_calibration.json").write_text(json.dumps(own))
    shown = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "default")
    assert "r = 0.50, shift +1.00 over 12 grades" in shown.stdout and "measured once" not in shown.stdout
