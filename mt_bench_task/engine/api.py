"""Stage 2, generate through an API: answer the questions with an OpenAI-compatible server.

Dataset: the bench's questions (`bench.Bench`); output: FastChat's answer JSONL, one line per
question. Paper: Zheng et al., arXiv:2306.05685.
Kept from FastChat's gen_api_answer: the chatgpt template's system message, the temperature
precedence, `n=1` requests, turn 2 seeing the turn-1 answer (a thinking model's answer, never its
thought: core/thoughts.py; the thought is kept beside it in the record), "$ERROR$" as the text
of a turn whose retries ran out, and the sorted final file. Changed on purpose: a typo'd URL fails in seconds
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
from mt_bench_task.core.thoughts import (
    DEFAULT_THINKING_TOKENS,
    Split,
    ThinkTags,
    check_think_tags,
    split_reply,
    template_tags,
)
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
                         workspace: Workspace | None = None,
                         max_thinking_tokens: int = DEFAULT_THINKING_TOKENS,
                         think_tags: tuple[str, str] | None = None) -> ApiGenerationStats:
    """Answer every selected question not yet answered in DATA_DIR/model_answer/MODEL.jsonl.

    `client` replaces the OpenAI client (e.g. a fake in tests); by default one is made for
    `base_url` ($OPENAI_BASE_URL, else api.openai.com), with `request_timeout` seconds per
    answer. A client with `check_reachable()` is checked first; one with `close()` is closed at
    the end (OpenAIChatClient reopens on reuse). Another run writing the same file is waited for
    (`wait_for_lock` False: a DataError), then only what it left is asked.
    The questions are the workspace's bench (default: DATA_DIR's, `workspace_at`).
    `max_tokens` is FastChat's answer budget; a model that thinks gets `max_thinking_tokens`
    more (`ThinkingBudget`); `think_tags` (OPEN, CLOSE) says it thinks, in those tags.
    """
    for name, value in (("parallel", parallel), ("max_tokens", max_tokens),
                        ("num_choices", num_choices)):
        if value < 1:
            raise ParameterError(f"{name} must be >= 1, got {value}", name)
    if max_thinking_tokens < 0:
        raise ParameterError(f"max_thinking_tokens must be >= 0, got {max_thinking_tokens}",
                             "max_thinking_tokens")
    check_think_tags(think_tags)
    budget = ThinkingBudget(max_tokens, max_thinking_tokens, template_tags(None, think_tags))
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
                                 parallel, budget, [q.key for q in bench.questions],
                                 wait_for_lock))


async def _generate(client: ChatClient, model: str, questions: Sequence[Question],
                    num_choices: int, temperatures: dict[QuestionId, float], out: Path,
                    parallel: int, budget: ThinkingBudget, order: Sequence[QuestionId] = (),
                    wait_for_lock: bool = True) -> ApiGenerationStats:
    try:
        await client.check_reachable()  # unreachable: DataError before anything is written
        with one_writer(out, wait_for_lock):  # what another run answered meanwhile is kept
            pending = data.pending_questions(list(questions), out, num_choices)
            try:
                with JsonlAppender(out).open() as sink:  # unwritable: fails before any request
                    failed = await _answer_all(client, model, pending, temperatures, sink,
                                               parallel, budget, num_choices)
            finally:
                if out.is_file():  # finished answers are kept, sorted, even on error
                    reorganize_answer_file(out, order)
    finally:
        await client.close()  # its connections belong to this event loop, which ends here
    return ApiGenerationStats(len(pending), failed, out, client.usage, len(questions))


async def _answer_all(client: ChatClient, model: str, pending: list[Question],
                      temperatures: dict[QuestionId, float], sink: JsonlAppender, parallel: int,
                      budget: ThinkingBudget, num_choices: int) -> int:
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
        client, model, q, temperatures[q.question_id], budget, num_choices),
        parallel, write, desc=f"gen-api {model}", unit="q", postfix=usage)
    return failed


class ThinkingBudget:
    """`max_tokens` per turn: FastChat's answer budget, plus the thinking budget once the model
    is known to think (`--think-tags` says so, or a reply of this run held a thought). The
    server counts the thought in max_tokens (vLLM; DeepSeek's reasoner), so one total is sent.
    Shared by the questions of a run."""

    def __init__(self, answer: int, thinking: int, tags: ThinkTags) -> None:
        self.answer, self.thinking, self.tags = answer, thinking, tags
        self.thinks = tags.thinks

    @property
    def tokens(self) -> int:
        return self.answer + (self.thinking if self.thinks else 0)

    def saw(self, split: Split) -> None:
        self.thinks = self.thinks or split.thought is not None


async def answer_turn(client: ChatClient, model: str, messages: list[dict[str, str]],
                      temperature: float, budget: ThinkingBudget) -> tuple[Split, str | None]:
    """One turn: (answer and thought, finish reason). A reply that thought and was cut under
    the answer-only budget (the model was not yet known to think) is asked once more with the
    thinking budget; "$ERROR$" on exhaustion, as FastChat."""
    for _ in range(2):
        sent = budget.tokens
        c = await client.complete(model, list(messages), temperature=temperature,
                                  max_tokens=sent)
        if c.failed:
            return Split(c.text), None
        split = split_reply(c.text, c.reasoning, budget.tags)
        budget.saw(split)
        if not (split.thought is not None and c.finish_reason == "length" and budget.tokens > sent):
            break
    return split, c.finish_reason


async def answer_question(client: ChatClient, model: str, question: Question,
                          temperature: float, max_tokens: int | ThinkingBudget,
                          num_choices: int) -> Answer:
    """All turns of all choices; each turn's request holds the conversation so far: the
    earlier answers, never their thoughts (those stay beside the answers in the record)."""
    import shortuuid

    budget = max_tokens if isinstance(max_tokens, ThinkingBudget) else \
        ThinkingBudget(max_tokens, 0, ThinkTags())
    choices = []
    for index in range(num_choices):
        messages = [{"role": "system", "content": SYSTEM_MESSAGE}]
        turns: list[str] = []
        thoughts: list[str | None] = []
        finish: list[str | None] = []
        for prompt in question.turns:
            messages.append({"role": "user", "content": prompt})
            split, reason = await answer_turn(client, model, messages, temperature, budget)
            messages.append({"role": "assistant", "content": split.answer})
            turns.append(split.answer)
            thoughts.append(split.thought)
            finish.append(reason)
        choices.append(Choice.with_thoughts(index, turns, thoughts, finish))
    return Answer(question_id=question.question_id, answer_id=shortuuid.uuid(), model_id=model,
                  choices=choices, tstamp=time.time())
