"""GPT-4-equivalent scores: `mt-bench calibrate` fits a monotone map from a judge's grades to the
official GPT-4 grades; `show` maps a calibrated judge's grades of other models.

The fake judge (a real local OpenAI-compatible server) grades an official answer by a
non-linear monotone function of its official GPT-4 grade plus noise fixed by the prompt. The
"other models" are the 28 official models without packaged answers: their judge grades are the
same function of their official grades, so their official averages are the truth to land on.
Reference numbers (conditional-mean leave-one-model-out error, averages) are recomputed here in
plain Python.
"""
from __future__ import annotations

import hashlib
import json
import random
import statistics
from pathlib import Path

import pytest
from support.cli import publish_offline
from support.fake_openai import FakeOpenAI
from support.official import PKG, SIX, grade_rows, official_grades, prompt_owner

from mt_bench_task.core import data
from mt_bench_task.core.bench import load_bench


def _judge_grade(official: float, key: str, noise: float = 0.7) -> int:
    """The fake judge: generous (a 2 becomes about 4, a 5 about 7), noisy (seeded by `key`)."""
    rng = random.Random(int(hashlib.sha256(key.encode()).hexdigest(), 16))
    return min(10, max(1, round(1 + 9 * ((official - 1) / 9) ** 0.5 + rng.gauss(0, noise))))


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every CLI call of this module runs with."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def _mapped(jmap: dict, grade: float, turn: int, category: str) -> float:
    """A grade through the saved map, by hand: its table (per turn/category if so chosen), the
    grade on the half-point grid."""
    group = {"all": "all", "turn": str(turn), "category": category}[jmap["by"]]
    table = jmap["tables"].get(group, jmap["tables"]["all"])
    return table[round((min(10.0, max(1.0, grade)) - 1) * 2)]


def test_calibrate_fits_a_map_and_show_lands_other_models_on_gpt4s_scale(mt_bench, tmp_path: Path):
    owner, grades = prompt_owner(SIX), official_grades()

    def respond(req: dict) -> str:
        key = owner[[m["content"] for m in req["messages"] if m["role"] == "user"][-1]]
        return f"Fine. Rating: [[{_judge_grade(grades[key], repr(key))}]]"

    with FakeOpenAI(respond) as server:
        res = mt_bench("calibrate", "--judge-model", "gpt-4o", "--openai-api-base", server.url,
                   "--parallel", "16", "--data-dir", str(tmp_path))
        assert res.returncode == 0, res.stderr
        saved = tmp_path / "calibration" / "gpt-4o_calibration.json"
        # the evaluate metric, given that calibration, grades vicuna's answers the same way
        from mt_bench_task.integrations import metric

        mt = load_bench("mt_bench")
        refs = [{"question_id": q.question_id, "category": q.category, "turns": q.turns}
                for q in mt.questions]
        vicuna = {a.question_id: a.turns for a in
                  data.read_answers(PKG / "official_answers" / "vicuna-13b-v1.3.jsonl")}
        got = metric.compute([vicuna[r["question_id"]] for r in refs], refs, model_id="vicuna",
                             judge=metric.JudgeSettings(judge_model="gpt-4o", base_url=server.url,
                                                        api_key="sk-test", parallel=16,
                                                        calibration=str(saved)),
                             return_judgments=True)
    stats = json.loads(saved.read_text())
    jmap = stats["map"]
    mapped = [_mapped(jmap, r["score"], r["turn"], mt.category_of[r["question_id"]])
              for r in got["judgments"] if r["score"] != -1]
    assert abs(got["gpt4_equivalent"]["average"] - statistics.fmean(mapped)) < 1e-9
    lo, hi = got["gpt4_equivalent"]["ci95"]
    assert lo < got["gpt4_equivalent"]["average"] < hi
    assert got["comparable"] is False and "GPT-4-equivalent" in got["gpt4_equivalent_label"]
    # printed: every candidate's leave-one-model-out error and each held-out model's average
    for name in jmap["comparison"]:
        assert name in res.stdout
    for model in SIX:
        assert model in jmap["validation"]["models"]
    assert f"chosen: {jmap['name']}" in res.stdout
    table = jmap["tables"]["all"]
    assert all(a <= b + 1e-12 for a, b in zip(table, table[1:]))  # monotone
    assert jmap["comparison"][jmap["name"]]["monotone"]

    # the conditional-mean candidate's leave-one-model-out error, recomputed by hand
    pairs = [(m, q, t, j, o) for m, q, t, j, o in stats["pairs"]]
    errors = []
    for held in SIX:
        by_grade: dict[float, list[float]] = {}
        for m, _, _, j, o in pairs:
            if m != held:
                by_grade.setdefault(j, []).append(o)
        mine = [(j, o) for m, _, _, j, o in pairs if m == held]
        if not all(j in by_grade for j, _ in mine):
            continue  # a grade only the held-out model got: the module interpolates
        pred = statistics.fmean(statistics.fmean(by_grade[j]) for j, _ in mine)
        errors.append(abs(pred - statistics.fmean(o for _, o in mine)))
    if len(errors) == len(SIX):
        got = jmap["comparison"]["conditional mean"]["lomo_mae"]
        assert abs(got - statistics.fmean(errors)) < 1e-9

    # the 28 other official models, graded by the same judge: GPT-4-equivalent vs official
    others = [r for r in grade_rows() if r["model"] not in SIX]
    (tmp_path / "model_judgment").mkdir()
    judged = [{**r, "judge": ["gpt-4o", r["judge"][1]], "user_prompt": "p", "judgment": "j",
               "score": -1 if r["score"] == -1 else
               _judge_grade(r["score"], repr((r["model"], r["question_id"], r["turn"])))}
              for r in others]
    (tmp_path / "model_judgment" / "gpt-4o_single.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in judged))
    out = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "gpt-4o", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["comparable"] is False
    assert shown["calibration"]["map"]["validation"] == jmap["validation"]
    assert "pairs" not in shown["calibration"]
    official: dict[str, list[float]] = {}
    for r in others:
        if r["score"] != -1:
            official.setdefault(r["model"], []).append(r["score"])
    misses, covered = [], 0
    for model, scores in official.items():
        entry = shown["models"][model]
        eq, truth = entry["gpt4_equivalent"], statistics.fmean(scores)
        raw = statistics.fmean(r["score"] for r in judged
                               if r["model"] == model and r["score"] != -1)
        assert abs(entry["average"] - raw) < 1e-9  # the raw score stays as it was
        misses.append(abs(eq["average"] - truth))
        covered += eq["ci95"][0] <= truth <= eq["ci95"][1]
    assert statistics.fmean(misses) < 0.2
    assert covered >= 26  # of 28: 95 % intervals
    # raw grades are far from GPT-4's scale: the map is what brings them there
    raw_misses = [abs(shown["models"][m]["average"] - statistics.fmean(s))
                  for m, s in official.items()]
    assert statistics.fmean(raw_misses) > 0.5

    # the card: the GPT-4-equivalent line beside the raw average, with how it was made
    card = publish_offline("--data-dir", str(tmp_path), "--judge-model", "gpt-4o", "--model-id",
                "vicuna-7b-v1.3", "--dry-run")
    assert card.returncode == 0, card.stderr
    eq = shown["models"]["vicuna-7b-v1.3"]["gpt4_equivalent"]
    assert (f"| GPT-4-equivalent average (1) | {eq['average']:.2f} (95% CI {eq['ci95'][0]:.2f}-"
            f"{eq['ci95'][1]:.2f}) |") in card.stdout
    assert f"(1) {jmap['label']}." in card.stdout and "not comparable" in card.stdout

    # the placement among the 34 official models: the GPT-4-equivalent beside the raw average
    placed = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "gpt-4o", "--leaderboard",
                  "--model-list", "vicuna-7b-v1.3", "--json")
    assert placed.returncode == 0, placed.stderr
    mine = json.loads(placed.stdout)["models"]["vicuna-7b-v1.3"]
    assert mine["official"] is False and abs(mine["gpt4_equivalent"]["average"] - eq["average"]) < 1e-9
    placed = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "gpt-4o", "--leaderboard",
                  "--model-list", "vicuna-7b-v1.3")
    assert f"GPT-4-equivalent {eq['average']:.2f}" in placed.stdout

    text = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "gpt-4o")
    assert "GPT-4-equivalent average" in text.stdout and jmap["name"] in text.stdout
    again = mt_bench("show", "--data-dir", str(tmp_path), "--judge-model", "gpt-4o", "--json")
    assert json.loads(again.stdout) == shown  # seeded
