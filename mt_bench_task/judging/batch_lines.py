"""A Batch API's files, both ways: the planned judge requests as JSONL lines (`batch_lines`) and
the result lines back as completions by id (`parse_results`, `refused_params`).

The bodies are the synchronous path's JSON, keys in the openai SDK's order (FastChat's request:
`model`, `messages`, `max_tokens` 2048, `n` 1, `temperature` 0, unless a reasoning model refused
a parameter: judging/request.py). Each request's `custom_id` is a pure function of the match
(judge, mode, question, turn, models, prompt name, repeat, game), so results are matched by id,
never by order, and a new process can collect a batch it did not submit.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Collection
from typing import Any

from mt_bench_task.core.chat import Completion
from mt_bench_task.core.judge_spec import JudgeSpec
from mt_bench_task.core.prompts import API_ERROR_OUTPUT, messages, user_prompts
from mt_bench_task.judging.call import Job
from mt_bench_task.judging.request import JUDGE_MAX_TOKENS, JUDGE_TEMPERATURE, request_params

log = logging.getLogger(__name__)


def custom_id(judge: str, mode: str, job: Job, game: int) -> str:
    """Deterministic from the match and game (1, or 2 for pairwise's swapped order)."""
    m, repeat = job
    key = [judge, mode, m.question.question_id, m.turn, m.model_1, m.model_2 or "",
           m.prompt.name, repeat or 0, game]
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:20]
    return f"mtb-q{m.question.question_id}-t{m.turn}-r{repeat or 0}-g{game}-{digest}"


def request_body(api_model: str, msgs: list[dict[str, str]], adapted: Collection[str] = (),
                 max_tokens: int = JUDGE_MAX_TOKENS, reasoning_effort: str | None = None
                 ) -> dict[str, Any]:
    """The synchronous path's body, in the order the openai SDK serializes it (`adapted`: the
    parameters a reasoning model refused, judging/request.py). A batch's verdict the limit cut
    is not asked again: give a thinking judge `--judge-max-tokens` there."""
    params = request_params(JUDGE_TEMPERATURE, max_tokens, adapted, reasoning_effort)
    body: dict[str, Any] = {"model": api_model, "messages": msgs}
    body.update((k, v) for k, v in params.items() if k != "temperature")
    body["n"] = 1
    body.update((k, v) for k, v in params.items() if k == "temperature")
    return body


def batch_lines(todo: list[Job], spec: JudgeSpec, mode: str, endpoint: str,
                adapted: Collection[str] = ()) -> list[tuple[str, str]]:
    """(custom_id, JSONL line) for every judge call of `todo`, in plan order."""
    lines = []
    for job in todo:
        for game, up in enumerate(user_prompts(job[0]), start=1):
            cid = custom_id(spec.display_name, mode, job, game)
            line = {"custom_id": cid, "method": "POST", "url": endpoint,
                    "body": request_body(spec.api_model, messages(job[0].prompt, up), adapted,
                                         spec.max_tokens, spec.reasoning_effort)}
            lines.append((cid, json.dumps(line)))
    return lines


def refused_params(content: bytes, refused_param: Callable[[int, Any], str | None]
                   ) -> dict[str, str]:
    """{custom_id: "max_tokens" or "temperature"} for the result lines whose error the server's
    rule (`BatchBackend.refused_param`) reads as a refused parameter (a reasoning model): sent
    again adapted, not judgments."""
    out: dict[str, str] = {}
    for raw in content.decode("utf-8").splitlines():
        try:
            line = json.loads(raw)
            response = line["response"]
            param = refused_param(response["status_code"], response["body"]["error"])
        except (ValueError, KeyError, TypeError):
            continue
        if param and isinstance(line.get("custom_id"), str):
            out[line["custom_id"]] = param
    return out


def parse_results(content: bytes) -> dict[str, Completion]:
    """Output or error file lines -> {custom_id: Completion}; errors are failed "$ERROR$"."""
    out: dict[str, Completion] = {}
    for raw in content.decode("utf-8").splitlines():
        try:
            line = json.loads(raw) if raw.strip() else None
            if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
                raise ValueError("no custom_id")
        except ValueError:  # an unreadable line: its request gets no result, the next run resends
            if raw.strip():
                log.warning("skipping an unreadable batch result line: %.80s", raw)
            continue
        response = line.get("response") or {}
        body = response.get("body") or {}
        try:
            if line.get("error") or response.get("status_code") != 200:
                raise ValueError("error line")
            text = body["choices"][0]["message"]["content"]
            if not isinstance(text, str):
                raise ValueError("no content")
        except (ValueError, KeyError, IndexError, TypeError):
            out[line["custom_id"]] = Completion(text=API_ERROR_OUTPUT, failed=True)
            continue
        usage = body.get("usage") or {}
        out[line["custom_id"]] = Completion(
            text=text, prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=body.get("model") if isinstance(body.get("model"), str) else None)
    return out
