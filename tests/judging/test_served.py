"""The judge that served: records keep the response's model; show, report and card name it."""
from __future__ import annotations

import json
from pathlib import Path

from support.answer_dirs import answer_dir
from support.fake_openai import FakeOpenAI

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.chat import ChatClientBase, Completion
from mt_bench_task.judging.execute import SendOptions
from mt_bench_task.judging.run import JudgeRun, run_judging
from mt_bench_task.outputs.publishing import _section
from mt_bench_task.outputs.report import build_payload
from mt_bench_task.outputs.views import show

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"




def test_served_model_is_recorded_and_named_by_show_report_and_card(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    with FakeOpenAI("judge") as server:
        server.served_model = {"gpt-4": "gpt-4-0613"}
        s = run_judging(JudgeRun(d, first_n=4, send=SendOptions(parallel=4)), client=OpenAIChatClient(server.url, "k"))
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["served_model"] for r in rows] == ["gpt-4-0613"] * 8
    assert rows[0]["judge"] == ["gpt-4", "single-v1"]  # the judge's name stays what was asked
    assert s.served_models == ["gpt-4-0613"] and "served by: gpt-4-0613" in s.end_lines()
    shown = show(d, None, "gpt-4", "single", None, None)
    assert "Judge: gpt-4 (served by gpt-4-0613)" in shown.text
    assert shown.results.served_by == ("gpt-4-0613",) and shown.labels == []
    assert shown.results.to_json()["served_by"] == ["gpt-4-0613"]
    # one record served by another snapshot: every output says the run was mixed
    rows[0]["served_model"] = "gpt-4-0314"
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    shown = show(d, None, "gpt-4", "single", None, None)
    assert any("served by 2 different models (gpt-4-0314, gpt-4-0613)" in x for x in shown.labels)
    payload = build_payload(d)
    assert payload["meta"]["served_by"] == ["gpt-4-0314", "gpt-4-0613"]
    assert any("2 different models" in x for x in payload["labels"])
    card = _section(MODEL, shown.results, None, "gpt-4", True, False, load_bench(),
                    served=list(shown.results.served_by))
    assert "judged by `gpt-4` (served by `gpt-4-0314`, `gpt-4-0613`)" in card
    assert "2 different models" in card


def test_a_judge_that_names_no_model_adds_no_key(tmp_path):
    class Judge(ChatClientBase):
        async def complete(self, model, messages, *, temperature, max_tokens):
            return Completion("Rating: [[5]]")

    d = answer_dir(tmp_path)
    run_judging(JudgeRun(d, first_n=1), client=Judge())
    rows = [json.loads(x) for x in (d / "model_judgment/gpt-4_single.jsonl").read_text().split("\n") if x]
    assert len(rows) == 2 and not any("served_model" in r for r in rows)
    assert "served by" not in show(d, None, "gpt-4", "single", None, None).text
