"""Stage 2, generate through an API: answer the questions with an OpenAI-compatible server.

Dataset: the bench's questions (`bench.Bench`); output: FastChat's answer JSONL, one line per
question. Paper: Zheng et al., arXiv:2306.05685.
Kept from FastChat's gen_api_answer: the chatgpt template's system message, the temperature
precedence, `n=1` requests, turn 2 seeing the turn-1 answer, "$ERROR$" as the text of a turn whose
retries ran out, and the sorted final file. Changed on purpose: a typo'd URL fails in seconds
before anything is written; finished questions are skipped (resume), except those with "$ERROR$",
which are asked again; asyncio with `parallel` questions in flight instead of a thread pool.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mt_bench_task.clients import api_client
from mt_bench_task.core import data
from mt_bench_task.core.chat import ChatClient, ClientUsage
from mt_bench_task.core.concurrency import bounded_map
from mt_bench_task.core.errors import ParameterError
from mt_bench_task.core.ids import QuestionId
from mt_bench_task.core.jsonl import JsonlAppender
from mt_bench_task.core.types import Answer, Choice, Question
from mt_bench_task.core.workspace import Workspace, workspace_at
from mt_bench_task.core.writer_lock import one_writer
from mt_bench_task.engine.driver import reorganize_answer_file

SYSTEM_MESSAGE = "You are a helpful assistant."  # FastChat's chatgpt template


@dataclass(frozen=True)
class ApiGenerationStats:
    questions: int  # answered in this run (resumed ones not counted)
    failed: int  # of those, questions with a "$ERROR$" turn (asked again on the next run)
    path: Path
    usage: ClientUsage
    selected: int = 0  # questions selected; those not asked were already answered

    def summary(self) -> str:
        """One line for the CLI to print."""
        kept = self.selected - self.questions
        if not self.questions:
            return f"all {self.selected} questions already answered in {self.path}; nothing to do"
        note = f", {kept} already answered (kept)" if kept else ""
        return f"answered {self.questions} questions ({self.failed} failed{note}) -> {self.path}"


def generate_api_answers(model: str, data_dir: Path | str, base_url: str | None = None,
                         parallel: int = 1, max_tokens: int = 1024, num_choices: int = 1,
                         question_begin: int | None = None, question_end: int | None = None,
                         force_temperature: float | None = None, *,
                         request_timeout: float | None = None, wait_for_lock: bool = True,
                         client: ChatClient | None = None,
                         workspace: Workspace | None = None) -> ApiGenerationStats:
    """Answer every selected question not yet answered in DATA_DIR/model_answer/MODEL.jsonl.

    `client` replaces the OpenAI client (e.g. a fake in tests); by default one is made for
    `base_url` ($OPENAI_BASE_URL, else api.openai.com), with `request_timeout` seconds per
    answer. A client with `check_reachable()` is checked first; one with `close()` is closed at
    the end (OpenAIChatClient reopens on reuse). Another run writing the same file is waited for
    (`wait_for_lock` False: a DataError), then only what it left is asked.
    The questions are the workspace's bench (default: DATA_DIR's, `workspace_at`).
    """
    for name, value in (("parallel", parallel), ("max_tokens", max_tokens),
                        ("num_choices", num_choices)):
        if value < 1:
            raise ParameterError(f"{name} must be >= 1, got {value}", name)
    data_dir = Path(data_dir)
    bench = workspace_at(data_dir, workspace).bench
    questions = bench.select(question_begin, question_end)
    # FastChat's precedence: force, the question's required_temperature, the category's
    temperatures = {q.question_id: bench.api_temperature(q, force_temperature) for q in questions}
    out = data.answer_file(data_dir, model)
    pending = data.pending_questions(questions, out, num_choices)  # DataError before any request
    if not pending:
        return ApiGenerationStats(0, 0, out, ClientUsage(), len(questions))
    chat = client if client is not None else api_client(base_url, timeout=request_timeout)
    return asyncio.run(_generate(chat, model, questions, num_choices, temperatures, out,
                                 parallel, max_tokens, [q.key for q in bench.questions],
                                 wait_for_lock))


async def _generate(client: ChatClient, model: str, questions: Sequence[Question],
                    num_choices: int, temperatures: dict[QuestionId, float], out: Path,
                    parallel: int, max_tokens: int, order: Sequence[QuestionId] = (),
                    wait_for_lock: bool = True) -> ApiGenerationStats:
    try:
        await client.check_reachable()  # unreachable: DataError before anything is written
        with one_writer(out, wait_for_lock):  # what another run answered meanwhile is kept
            pending = data.pending_questions(list(questions), out, num_choices)
            try:
                with JsonlAppender(out).open() as sink:  # unwritable: fails before any request
                    failed = await _answer_all(client, model, pending, temperatures, sink,
                                               parallel, max_tokens, num_choices)
            finally:
                if out.is_file():  # finished answers are kept, sorted, even on error
                    reorganize_answer_file(out, order)
    finally:
        await client.close()  # its connections belong to this event loop, which ends here
    return ApiGenerationStats(len(pending), failed, out, client.usage, len(questions))


async def _answer_all(client: ChatClient, model: str, pending: list[Question],
                      temperatures: dict[QuestionId, float], sink: JsonlAppender, parallel: int,
                      max_tokens: int, num_choices: int) -> int:
    """Ask `pending`, each answer appended to `sink` as it completes; the failed count."""
    failed = 0

    def write(result: Answer) -> None:
        nonlocal failed
        sink.write(result.to_json())
        failed += result.failed  # asked again on the next run (`Answer.failed`)

    def usage() -> dict[str, Any]:
        u = client.usage
        return {"tokens": u.prompt_tokens + u.completion_tokens, "retries": u.retries,
                "failed": failed}

    await bounded_map(pending, lambda q: answer_question(
        client, model, q, temperatures[q.question_id], max_tokens, num_choices),
        parallel, write, desc=f"gen-api {model}", unit="q", postfix=usage)
    return failed


async def answer_question(client: ChatClient, model: str, question: Question,
                          temperature: float, max_tokens: int, num_choices: int) -> Answer:
    """All turns of all choices; each turn's request holds the conversation so far."""
    import shortuuid

    choices = []
    for index in range(num_choices):
        messages = [{"role": "system", "content": SYSTEM_MESSAGE}]
        turns: list[str] = []
        for prompt in question.turns:
            messages.append({"role": "user", "content": prompt})
            completion = await client.complete(model, list(messages), temperature=temperature,
                                               max_tokens=max_tokens)
            messages.append({"role": "assistant", "content": completion.text})
            turns.append(completion.text)  # "$ERROR$" on exhaustion, as FastChat
        choices.append(Choice(index, turns))
    return Answer(question_id=question.question_id, answer_id=shortuuid.uuid(), model_id=model,
                  choices=choices, tstamp=time.time())
