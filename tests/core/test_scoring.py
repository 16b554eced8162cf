"""`mt-bench show` equals FastChat show_result on real runs (tests/conformance/expected.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mt_bench_task.core import data, scoring
from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.results import PairScore, Results
from mt_bench_task.core.types import PairJudgment, SingleJudgment
from mt_bench_task.outputs import views

CONF = Path(__file__).parents[1] / "conformance"
EXPECTED = json.loads((CONF / "expected.json").read_text())
PAIR = "lesnikow/model_judgment/gpt-4-turbo_pair.jsonl"


def _show_json(mt_bench, *args: str) -> dict:
    out = mt_bench("show", "--json", *args)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("run", ["jxiw", "instructlab"])
def test_single_show_json_equals_fastchat(mt_bench, run):
    exp = EXPECTED[f"{run}/model_judgment/gpt-4_single.jsonl :: --mode single"]
    got = _show_json(mt_bench, "--input-file", str(CONF / run / "model_judgment" / "gpt-4_single.jsonl"))
    assert set(got) == {"mode", "rows", "rows_dropped", "models", "judge", "comparable",
                        "judge_repeats"}
    assert (got["judge"], got["comparable"], got["judge_repeats"]) == ("gpt-4", True, 1)
    assert got["rows"] == exp["rows"] and got["rows_dropped"] == exp["rows_score_minus1_dropped"]
    assert set(got["models"]) == set(exp["average"])
    for name, m in got["models"].items():
        assert set(m) == {"turn_1", "turn_2", "average", "n_turn_1", "n_turn_2", "categories", "ci95",
                          "judge_sd"}
        assert m["judge_sd"] is None  # judged once
        assert m["turn_1"] == pytest.approx(exp["turn1"][name], abs=1e-9)
        assert m["turn_2"] == pytest.approx(exp["turn2"][name], abs=1e-9)
        assert m["average"] == pytest.approx(exp["average"][name], abs=1e-9)
        assert (m["n_turn_1"], m["n_turn_2"]) == (exp["n_used"][name]["turn1"], exp["n_used"][name]["turn2"])
        assert m["ci95"][0] <= m["average"] <= m["ci95"][1]


LESNIKOW_SFT = "no_train_shp_maj_data_dataset_sft_loss_pythia28_model_8_batch_size_2024-09-18_21-15-10_125466"


@pytest.mark.parametrize("key,args", [
    (f"{PAIR} :: --mode pairwise-all", ["--mode", "pairwise-all"]),
    (f"{PAIR} :: --mode pairwise-baseline --baseline-model {LESNIKOW_SFT}",
     ["--mode", "pairwise-baseline", "--baseline-model", LESNIKOW_SFT]),
])
def test_pairwise_show_json_equals_fastchat(mt_bench, key, args):
    exp = EXPECTED[key]
    got = _show_json(mt_bench, "--input-file", str(CONF / PAIR), *args)
    assert set(got) == {"mode", "rows", "rows_dropped", "models", "consistency", "judge",
                        "comparable"}
    assert (got["judge"], got["comparable"]) == ("gpt-4-turbo", False)  # not GPT-4 (the paper's)
    assert got["rows"] == exp["rows"] and got["rows_dropped"] == exp["rows_with_error_dropped"]
    assert set(got["models"]) == set(exp["table"])
    for name, row in exp["table"].items():
        for k, v in row.items():
            assert got["models"][name][k] == pytest.approx(v, abs=1e-9), (name, k)
    rows = [json.loads(l) for l in (CONF / PAIR).read_text().splitlines()]
    used = [r for r in rows if args[1] == "pairwise-all" or args[3] in (r["model_1"], r["model_2"])]
    assert got["consistency"] == pytest.approx(sum(r["g1_winner"] == r["g2_winner"] for r in used) / len(used))


def test_results_from_records_equal_fastchat_and_show_json(mt_bench):
    """The library path (typed records from the reader) gives show --json's object, whose
    numbers are FastChat's (expected.json)."""
    cats = load_bench().category_of
    for run in ("jxiw", "instructlab"):
        path = CONF / run / "model_judgment" / "gpt-4_single.jsonl"
        got = scoring.results_from_records(data.read_single_judgments(path), categories=cats)
        assert got.to_json() == _show_json(mt_bench, "--input-file", str(path))
        assert Results.from_json(got.to_json(), got.categories) == got  # read back, typed
        exp = EXPECTED[f"{run}/model_judgment/gpt-4_single.jsonl :: --mode single"]
        assert {n: got.score(n).average for n in got.models} == pytest.approx(exp["average"])
        assert {n: got.score(n).turn_1 for n in got.models} == pytest.approx(exp["turn1"])
        # per-category scores come in the bench's category order
        first = got.score(next(iter(got.models)))
        assert list(first.categories) == [c for c in load_bench().categories if c in first.categories]
    records = data.read_pair_judgments(CONF / PAIR)
    got = scoring.results_from_records(records, "pairwise-all")
    assert got.to_json() == _show_json(mt_bench, "--input-file", str(CONF / PAIR), "--mode", "pairwise-all")
    for name, row in EXPECTED[f"{PAIR} :: --mode pairwise-all"]["table"].items():
        assert {k: getattr(got.rates(name), k) for k in row} == pytest.approx(row)
    with pytest.raises(DataError, match="record 1 is not a single-mode judgment"):
        scoring.results_from_records(records, "single")


def _single(qid: int, score: float, turn: int, model: str = "m") -> SingleJudgment:
    return SingleJudgment(qid, model, ["gpt-4", "single-v1"], score=score, turn=turn)


def test_average_is_pooled_over_rows_not_mean_of_turns():
    rows = [_single(81, 10, 1), _single(82, 10, 1), _single(81, 4, 2), _single(82, -1, 2)]
    res = scoring.summarize_single(rows, {81: "writing", 82: "writing"})
    m = res.score("m")
    assert (m.turn_1, m.turn_2, m.average) == (10.0, 4.0, 8.0)
    assert res.rows_dropped == 1 and m.categories == {"writing": 8.0}


def test_pairwise_inconsistent_counts_as_tie_and_errors_dropped():
    rows = [PairJudgment(81, "a", "b", g1, g2, ["gpt-4", "pair-v2"], turn=1)
            for g1, g2 in [("model_1", "model_1"), ("model_1", "model_2"), ("tie", "model_1"),
                           ("error", "model_1")]]
    res = scoring.summarize_pairwise(rows, "pairwise-all")
    assert res.rates("a") == PairScore(1, 0, 2, 1 / 3, 0.0, 2 / 3)
    assert res.rows_dropped == 1 and res.consistency == pytest.approx(1 / 3)


def test_text_tables_are_fastchats(mt_bench, tmp_path):
    shown = mt_bench("show", "--input-file", CONF / "jxiw/model_judgment/gpt-4_single.jsonl")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    for header in ("########## First turn ##########", "########## Second turn ##########",
                   "########## Average ##########"):
        assert header in out
    assert "mamba_0_5_dpo_ep3    7.312500" in out  # pandas repr of the pooled average
    assert "Per category" in out


def test_unknown_model_in_model_list_is_a_clear_error(mt_bench):
    p = mt_bench("show", "--input-file", CONF / "jxiw/model_judgment/gpt-4_single.jsonl",
                 "--model-list", "nope")
    assert p.returncode == 2 and "nope" in p.stderr and "Traceback" not in p.stderr


def test_radar_plot_writes_png(tmp_path):
    out = tmp_path / "radar.png"
    res = views.show(tmp_path, str(CONF / "jxiw/model_judgment/gpt-4_single.jsonl"), "gpt-4",
                       "single", None, None, plot=str(out))
    assert res.plot == out and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert len(res.results.models) == 6 and "########## First turn ##########" in res.text
    assert res.labels == []  # a gpt-4 judge: comparable, no label
