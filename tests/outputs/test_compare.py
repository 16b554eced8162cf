"""`mt-bench show --compare`: paired bootstrap and sign-flip permutation over questions.

The reference numbers are computed here independently, in plain Python (`random`, loops over
questions, sorted lists for percentiles), from the packaged official grades; the CLI runs as a
in process (the `mt_bench` fixture).
"""
from __future__ import annotations

import json
import random
from pathlib import Path

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "mt_bench_task").is_dir())
GRADES = ROOT / "mt_bench_task" / "data" / "official_grades" / "gpt-4_single_scores.jsonl"




def _rows() -> list[dict]:
    return [json.loads(line) for line in GRADES.read_text(encoding="utf-8").splitlines() if line]


def _per_question(rows: list[dict], model: str) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for r in rows:
        if r["model"] == model and r["score"] != -1:
            out.setdefault(r["question_id"], []).append(float(r["score"]))
    return out


def _independent(a: dict, b: dict, draws: int = 4000) -> tuple[float, float, float, float]:
    """(delta, ci low, ci high, p) by resampling whole questions with `random`, then flipping."""
    qs = sorted(set(a) & set(b))

    def delta(pick_a: list, pick_b: list) -> float:
        flat_a = [s for q in pick_a for s in q]
        flat_b = [s for q in pick_b for s in q]
        return sum(flat_a) / len(flat_a) - sum(flat_b) / len(flat_b)

    observed = delta([a[q] for q in qs], [b[q] for q in qs])
    rng = random.Random(12345)
    boots = []
    for _ in range(draws):
        chosen = [rng.choice(qs) for _ in qs]
        boots.append(delta([a[q] for q in chosen], [b[q] for q in chosen]))
    boots.sort()
    extreme = 0
    for _ in range(draws):
        flip = [rng.random() < 0.5 for _ in qs]
        d = delta([b[q] if f else a[q] for q, f in zip(qs, flip)],
                  [a[q] if f else b[q] for q, f in zip(qs, flip)])
        extreme += abs(d) >= abs(observed) - 1e-12
    return (observed, boots[int(0.025 * draws)], boots[int(0.975 * draws) - 1],
            (extreme + 1) / (draws + 1))


def test_compare_reproduces_an_independent_paired_bootstrap_on_the_official_grades(mt_bench):
    rows = _rows()
    verdicts = {}
    for a, b in (("gpt-4", "claude-v1"), ("vicuna-13b-v1.3", "wizardlm-13b")):
        out = mt_bench("show", "--input-file", str(GRADES), "--compare", a, b, "--json")
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)["compare"]
        assert (got["a"], got["b"], got["n_questions"]) == (a, b, 80)
        delta, lo, hi, p = _independent(_per_question(rows, a), _per_question(rows, b))
        assert abs(got["delta"] - delta) < 0.01
        assert abs(got["ci95"][0] - lo) < 0.1 and abs(got["ci95"][1] - hi) < 0.1
        assert abs(got["p_value"] - p) < 0.05
        verdicts[a] = got["resolved"]
        # the sentence says the same in text, and the numbers repeat run after run (fixed seeds)
        text = mt_bench("show", "--input-file", str(GRADES), "--compare", a, b)
        assert text.returncode == 0, text.stderr
        assert (" resolved:" if got["resolved"] else "not resolved:") in text.stdout
        again = mt_bench("show", "--input-file", str(GRADES), "--compare", a, b, "--json")
        assert json.loads(again.stdout)["compare"] == got
    assert verdicts == {"gpt-4": True, "vicuna-13b-v1.3": False}


def test_compare_pairwise_from_wins_and_losses(mt_bench, tmp_path: Path):
    """A beats B on 50 questions, ties 10 (one of them inconsistent), loses 20: the adjusted win
    rate difference is (55 - 25) / 80, checked against the records counted here."""
    rows = []
    for i, qid in enumerate(range(81, 161)):
        g1, g2 = (("model_1", "model_1") if i < 50 else ("tie", "tie") if i < 59
                  else ("model_1", "model_2") if i < 60 else ("model_2", "model_2"))
        rows.append({"question_id": qid, "model_1": "a", "model_2": "b", "g1_winner": g1,
                     "g2_winner": g2, "judge": ["gpt-4", "pair-v2"], "turn": 1})
    path = tmp_path / "pair.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = mt_bench("show", "--input-file", str(path), "--mode", "pairwise-all", "--compare", "a", "b",
               "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)["compare"]
    points_a = sum(1.0 if r["g1_winner"] == r["g2_winner"] == "model_1" else
                   0.5 if r["g1_winner"] == "tie" or r["g1_winner"] != r["g2_winner"] else 0.0
                   for r in rows)
    assert abs(got["delta"] - (points_a - (80 - points_a)) / 80) < 1e-9
    assert got["n_questions"] == 80 and got["resolved"] and got["p_value"] < 0.01
    reverse = json.loads(mt_bench("show", "--input-file", str(path), "--mode", "pairwise-all",
                              "--compare", "b", "a", "--json").stdout)["compare"]
    assert abs(reverse["delta"] + got["delta"]) < 1e-9


def test_compare_leaderboard_separability_and_a_copy_of_an_official_model(mt_bench, tmp_path: Path):
    """A user's "gpt-4" whose grades are the official gpt-4's: its pair with "gpt-4 (official)"
    has delta 0 and is not resolved; every pair of the 35 models is listed."""
    mine = [r for r in _rows() if r["model"] == "gpt-4"]
    d = tmp_path / "d" / "model_judgment"
    d.mkdir(parents=True)
    (d / "gpt-4_single.jsonl").write_text("".join(json.dumps(r) + "\n" for r in mine))
    out = mt_bench("show", "--data-dir", str(tmp_path / "d"), "--leaderboard", "--compare", "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)["compare"]
    assert len(got["models"]) == 35 and got["n_pairs"] == 35 * 34 // 2
    assert got["resolved"] == sum(p["resolved"] for p in got["pairs"])
    assert abs(got["separability"] - got["resolved"] / got["n_pairs"]) < 1e-12
    twin = [p for p in got["pairs"] if {p["a"], p["b"]} == {"gpt-4", "gpt-4 (official)"}]
    assert len(twin) == 1 and twin[0]["delta"] == 0 and not twin[0]["resolved"]
    text = mt_bench("show", "--data-dir", str(tmp_path / "d"), "--leaderboard", "--compare")
    assert f"resolved pairs: {got['resolved']} of {got['n_pairs']}" in text.stdout


def test_compare_refuses_an_unknown_model_and_a_single_model(mt_bench, tmp_path: Path):
    out = mt_bench("show", "--input-file", str(GRADES), "--compare", "gpt-4", "no-such-model")
    assert out.returncode == 2 and "no-such-model" in out.stderr and "Traceback" not in out.stderr
    out = mt_bench("show", "--input-file", str(GRADES), "--compare", "gpt-4")
    assert out.returncode == 2 and "two models" in out.stderr and out.stdout == ""
