"""The cost of a run: the plan's estimate and price, the server's tokens, failures and share."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.answer_dirs import answer_dir
from support.fake_openai import FakeOpenAI

from mt_bench_task.judging.cost import end_lines, judge_price, plan_line, price_table

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every CLI call of this module runs with."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-cost-123456")


def test_the_packaged_table_names_its_date_and_source_and_batch_is_half():
    table = price_table()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", table["date"]) and "openai.com" in table["source"]
    p = judge_price(["gpt-4"])
    assert (p.input, p.output) == (30.0, 60.0) and table["date"] in p.source
    b = judge_price(["gpt-4"], batch=True)
    assert (b.input, b.output) == (15.0, 30.0) and "batch" in b.source
    assert judge_price(["my-judge"]) is None  # unknown, never a guess
    assert judge_price(["my-judge", "gpt-4o-mini"]).input == 0.15  # the served model's price
    mine = judge_price(["gpt-4"], price_input=1.0, price_output=2.0)
    assert (mine.input, mine.output) == (1.0, 2.0) and "--price-input" in mine.source


def test_plan_and_end_lines():
    p = judge_price(["gpt-4"])
    line = plan_line(160, 240_000, 2048, p)
    assert "160 requests, about 240000 prompt tokens" in line and "327680 completion" in line
    assert "about $7.20 for the prompts, at most $26.86" in line
    assert "price: unknown" in plan_line(1, 10, 2048, None)
    cost, fail = end_lines(161, 1_000_000, 100_000, 2, 160, p)
    assert "1000000 prompt + 100000 completion" in cost and "$36.00" in cost
    assert fail.startswith("failures: 2 of 160 judgments (1.2 %)")


@pytest.mark.parametrize("extra,price", [((), "$30 / $60"), (("--batch",), "$15 / $30"),
                                         (("--judge-model", "my-judge"), "unknown"),
                                         (("--price-input", "1", "--price-output", "2"), "$1 / $2")])
def test_dry_run_prints_the_cost_plan(mt_bench, tmp_path, extra, price):
    r = mt_bench("judge", "--data-dir", str(answer_dir(tmp_path)), "--dry-run", *extra)
    assert r.returncode == 0, r.stderr
    plan = next(x for x in r.stderr.splitlines() if x.startswith("cost plan:"))
    assert "160 requests" in plan and "327680 completion tokens" in plan and price in plan


def test_a_local_judges_plan_counts_its_own_budget(mt_bench, tmp_path):
    """The embedded judge stops at 8 new tokens: its plan says 8 per call, not FastChat's 2048."""
    r = mt_bench("judge", "--data-dir", str(answer_dir(tmp_path)), "--dry-run", "--judge-model", "default")
    assert r.returncode == 0, r.stderr
    assert "plus up to 8 completion tokens per call" in r.stderr
    plan = next(x for x in r.stderr.splitlines() if x.startswith("cost plan:"))
    assert "160 requests" in plan and "at most 1280 completion tokens" in plan and "$0" in plan


def test_a_run_ends_with_the_servers_tokens_price_and_failure_share(mt_bench, tmp_path):
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge", faults=["400"]) as server:
        server.served_model = {"gpt-4": "gpt-4-0613"}
        r = mt_bench("judge", "--data-dir", str(d), "--openai-api-base", server.url, "--parallel", "4",
                     "--first-n", "5")
    assert r.returncode == 1  # one refused request: a failed judgment
    cost = next(x for x in r.stderr.splitlines() if x.startswith("cost:"))
    assert re.search(r"cost: 10 requests, \d+ prompt \+ \d+ completion tokens", cost)
    assert "$" in cost and "gpt-4" in cost
    assert "failures: 1 of 10 judgments (10.0 %)" in r.stderr
    assert "served by: gpt-4-0613" in r.stderr
    assert "sk-test-cost-123456" not in r.stderr + r.stdout
