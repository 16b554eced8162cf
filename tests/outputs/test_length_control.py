"""Length-controlled scores, end to end with real local OpenAI-compatible servers.

The answering server gives each model's answers a quality (strong or weak, varying by question)
written into the text, and makes them several times longer when the system prompt asks for
detail. "strong-detailed" is "strong" asked, through a client that rewrites the system prompt,
to "be very detailed". The judge server rewards quality and, like GPT-4, length: a grade is the
quality plus 1.5 per doubling of the prompt it reads. The raw score of strong-detailed rises;
the length-controlled one must rise much less. Pairwise: the judge prefers the longer answer on
equal quality; the style-controlled Bradley-Terry rate of strong-detailed against strong stays
near one half while its raw win rate is far above.
"""
from __future__ import annotations

import hashlib
import json
import math
import random
import re
from pathlib import Path
from typing import Any

import pytest
from support.cli import publish_offline
from support.fake_openai import FakeOpenAI

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.engine.api import generate_api_answers

DETAIL = "Be very detailed."


def _hash(*parts: str) -> int:
    return int(hashlib.sha256("|".join(parts).encode()).hexdigest(), 16)


def _quality(model: str, text: str) -> int:
    return (5 if model.startswith("strong") else 2) + _hash(model.split("-")[0], text) % 2


def _answerer(req: dict[str, Any]) -> str:
    """Answers of 40-300 words (varying by question and model); asked for detail, three times
    as long and no better."""
    system = req["messages"][0]["content"]
    last = req["messages"][-1]["content"]
    model = req["model"].split("-")[0]
    words = 40 + _hash(model, last, "length") % 260
    words *= 3 if DETAIL in system else 1
    return f"Answer (quality {_quality(model, last)}): " + " ".join(
        f"point{i}" for i in range(words))


def _judged_answer(prompt: str, who: str = "") -> str:
    """The last answer of the assistant in a FastChat judge prompt (single or multi-turn)."""
    found = re.findall(rf"\[The Start of Assistant{who}'s Answer\](.*?)\[The End of Assistant",
                       prompt, re.S)
    if found:
        return found[-1]
    name = who.strip() or "A"
    conversation = prompt.split(f"Start of Assistant {name}'s Conversation")[-1]
    return conversation.split(f"### Assistant {name}:")[-1].split("<|The End")[0]


def _single_judge(req: dict[str, Any]) -> str:
    """Quality, plus one point per doubling of the answer's length (80 words: nothing)."""
    answer = _judged_answer(req["messages"][-1]["content"])
    quality = int(re.findall(r"quality (\d+)", answer)[-1])
    grade = quality + math.log2(len(answer.split()) / 80)
    return f"Fine. Rating: [[{min(10, max(1, round(grade)))}]]"


def _pair_judge(req: dict[str, Any]) -> str:
    """Prefers the better answer, and the longer one: on equal quality three times the length
    wins most games."""
    prompt = req["messages"][-1]["content"]
    a, b = (_judged_answer(prompt, f" {x}") for x in "AB")
    qa, qb = (int(re.findall(r"quality (\d+)", x)[-1]) for x in (a, b))
    # quality, two points per doubling of length, and noise fixed by the prompt
    edge = qa - qb + 2 * math.log2(len(a.split()) / len(b.split()))
    edge += random.Random(_hash(prompt)).gauss(0, 1.5)
    return "[[A]]" if edge > 1 else "[[B]]" if edge < -1 else "[[C]]"


class _Detailed(OpenAIChatClient):
    """The same API, asked to be very detailed: the system prompt of every request rewritten."""

    async def complete(self, model: str, messages: list[dict[str, str]], **kw: Any) -> Any:
        messages = [dict(m, content=f"{m['content']} {DETAIL}") if m["role"] == "system" else m
                    for m in messages]
        return await super().complete(model, messages, **kw)


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key every CLI call of this module runs with."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")


def _answers(d: Path, server: FakeOpenAI) -> None:
    for model, client in (("weak", None), ("strong", None),
                          ("strong-detailed", _Detailed(server.url, api_key="sk-test"))):
        stats = generate_api_answers(model, d, server.url, parallel=8, question_end=40,
                                     client=client or OpenAIChatClient(server.url, api_key="sk-test"))
        assert stats.failed == 0


def test_a_verbose_prompt_moves_the_raw_score_more_than_the_length_controlled_one(mt_bench, tmp_path: Path):
    d = tmp_path / "d"
    with FakeOpenAI(_answerer) as answers, FakeOpenAI(_single_judge) as judge:
        _answers(d, answers)
        res = mt_bench("judge", "--data-dir", str(d), "--judge-model", "gpt-4o", "--openai-api-base",
                   judge.url, "--parallel", "16", "--allow-partial", "--model-list", "weak", "strong",
                   "strong-detailed")
        assert res.returncode == 0, res.stderr
    out = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", "--json")
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    m = shown["models"]
    raw_move = m["strong-detailed"]["average"] - m["strong"]["average"]
    lc_move = (m["strong-detailed"]["length_controlled"]["average"]
               - m["strong"]["length_controlled"]["average"])
    assert raw_move > 1.0  # the judge paid for length
    assert abs(lc_move) < raw_move / 3
    control = shown["length_control"]
    assert control["coefficient"] > 0 and control["ci95"][0] > 0
    assert "length-controlled" in control["label"]
    # the raw scores are FastChat's averages, untouched
    rows = [json.loads(x) for x in (d / "model_judgment" / "gpt-4o_single.jsonl").read_text()
            .splitlines()]
    strong = [r["score"] for r in rows if r["model"] == "strong" and r["score"] != -1]
    assert abs(m["strong"]["average"] - sum(strong) / len(strong)) < 1e-9
    text = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o")
    assert "Length-controlled" in text.stdout and "length coefficient" in text.stdout

    # the report's comparison section: the same numbers as show, and show --compare's pairs
    from mt_bench_task.outputs import report

    payload = report.build_payload(d, "gpt-4o")
    rows = {r["model"]: r for r in payload["comparison"]["rows"]}
    assert rows["strong"]["length_controlled"] == m["strong"]["length_controlled"]
    together = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", "--compare", "--json")
    assert payload["comparison"]["pairs"] == json.loads(together.stdout)["compare"]
    assert 'id="comparison"' in report.render_html(payload)
    # the card: the length-controlled line beside the raw average
    card = publish_offline("--data-dir", str(d), "--judge-model", "gpt-4o", "--model-id",
                "strong-detailed", "--dry-run")
    assert card.returncode == 0, card.stderr
    lc = m["strong-detailed"]["length_controlled"]
    assert (f"| length-controlled average (1) | {lc['average']:.2f} (95% CI {lc['ci95'][0]:.2f}-"
            f"{lc['ci95'][1]:.2f}) |") in card.stdout

    # pairwise: against strong as the baseline, Bradley-Terry with and without the length term
    with FakeOpenAI(_pair_judge) as judge:
        res = mt_bench("judge", "--data-dir", str(d), "--judge-model", "gpt-4o", "--openai-api-base",
                   judge.url, "--parallel", "16", "--allow-partial", "--mode", "pairwise-baseline",
                   "--baseline-model", "strong", "--model-list", "weak", "strong-detailed")
        assert res.returncode == 0, res.stderr
    out = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", "--mode",
               "pairwise-baseline", "--baseline-model", "strong", "--json")
    assert out.returncode == 0, out.stderr
    pair = json.loads(out.stdout)
    verbose = pair["models"]["strong-detailed"]
    raw, lc = verbose["win_rate_adjusted"], verbose["length_controlled"]
    assert raw > 0.7 and lc["win_rate_bt"] > 0.7, verbose  # length bought wins
    assert abs(lc["win_rate"] - 0.5) < (raw - 0.5) / 2, verbose  # at equal length, far fewer
    assert pair["length_control"]["coefficient"] > 0
