"""The task side of the seam, the same for every engine: bench questions -> GenRequests,
GenResults -> FastChat answers.

Each (question, choice) is a conversation. Its turn 1 is submitted at the start; each later turn
as soon as the previous one comes back, its messages holding every earlier cleaned answer
(FastChat's gen_model_answer appends the cleaned output as the assistant message; a thinking
model's thought is split off first, core/thoughts.py, and kept beside the answer, never in the
history). A question is an `Answer` once all its choices have all their turns. `AnswerSink`
appends those to the answer file as they come (so a killed run resumes) and sorts it at the end.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mt_bench_task.core.ids import QuestionId, question_key, sort_question_keys
from mt_bench_task.core.jsonl import JsonlAppender, write_lines_atomic
from mt_bench_task.core.thoughts import DEFAULT_THINKING_TOKENS, Split, ThinkTags, split_text
from mt_bench_task.core.types import GEN_ERROR_OUTPUT, Answer, Choice, Question
from mt_bench_task.engine.base import Engine, GenRequest, GenResult

if TYPE_CHECKING:
    from pathlib import Path

SYNC_STEPS = 16  # engine steps between two collections of finished answers


class Conversation:
    """One (question, choice): its messages so far and its finished turns (answers, and beside
    them each turn's thought and finish reason)."""

    def __init__(self, question: Question, choice: int, temperature: float) -> None:
        self.question, self.choice, self.temperature = question, choice, temperature
        self.messages: list[tuple[str, str]] = []
        self.turns: list[str] = []
        self.thoughts: list[str | None] = []
        self.finish_reasons: list[str | None] = []

    @property
    def done(self) -> bool:
        return len(self.turns) == len(self.question.turns)

    def next_request(self, max_new_tokens: int, stop_ids: frozenset[int]) -> GenRequest:
        turn = len(self.turns)
        self.messages.append(("user", self.question.turns[turn]))
        return GenRequest(question_id=self.question.question_id, turn=turn, choice=self.choice,
                          messages=tuple(self.messages), temperature=self.temperature,
                          seed=self.choice, max_new_tokens=max_new_tokens,
                          stop_token_ids=stop_ids, final=turn + 1 == len(self.question.turns))

    def record(self, result: GenResult, tags: ThinkTags) -> None:
        """The turn's answer goes into the history (never its thought: the models' own chat
        templates drop it too) and into `turns`; the thought beside it."""
        split = split_text(result.text, tags) if result.text != GEN_ERROR_OUTPUT else Split(result.text)
        self.messages.append(("assistant", split.answer))
        self.turns.append(split.answer)
        self.thoughts.append(split.thought)
        self.finish_reasons.append(result.finish_reason)

    def choice_record(self) -> Choice:
        return Choice.with_thoughts(self.choice, self.turns, self.thoughts, self.finish_reasons)


class Work:
    """Questions through one engine; `advance` returns the questions finished meanwhile."""

    def __init__(self, engine: Engine, questions: Sequence[Question], temperature: Any,
                 num_choices: int, max_new_tokens: int, model_id: str,
                 max_thinking_tokens: int = DEFAULT_THINKING_TOKENS,
                 think_tags: ThinkTags = ThinkTags()) -> None:
        """`temperature(category) -> float` is the bench's per-category rule. `think_tags`: how
        the engine's model marks a thought (`base.model_think_tags`); a model known to think
        gets `max_thinking_tokens` on top of the answer budget `max_new_tokens` (one total per
        turn: docs/thinking-models.md)."""
        self.engine, self.model_id = engine, model_id
        self.tags = think_tags
        self.max_new_tokens = max_new_tokens + (max_thinking_tokens if self.tags.thinks else 0)
        self.stop_ids = engine.stop_token_ids
        self.open: dict[QuestionId, list[Conversation]] = {}
        first: list[GenRequest] = []
        for q in questions:
            convs = [Conversation(q, c, temperature(q.category)) for c in range(num_choices)]
            self.open[q.question_id] = convs
            first += [conv.next_request(self.max_new_tokens, self.stop_ids) for conv in convs]
        engine.submit(first)

    def advance(self, steps: int) -> tuple[list[Answer], int, bool]:
        """Up to `steps` engine steps -> (questions finished, tokens generated, work left)."""
        answers: list[Answer] = []
        tokens = 0
        for _ in range(steps):
            if not self.engine.busy:
                break
            for result in self.engine.step():
                tokens += result.tokens
                answer = self._record(result)
                if answer is not None:
                    answers.append(answer)
        return answers, tokens, self.engine.busy

    def _record(self, result: GenResult) -> Answer | None:
        r = result.request
        convs = self.open[r.question_id]
        conv = convs[r.choice]
        conv.record(result, self.tags)
        if not conv.done:
            self.engine.submit([conv.next_request(self.max_new_tokens, self.stop_ids)])
            return None
        if not all(c.done for c in convs):
            return None
        del self.open[r.question_id]
        import shortuuid

        return Answer(question_id=r.question_id, answer_id=shortuuid.uuid(),
                      model_id=self.model_id, choices=[c.choice_record() for c in convs],
                      tstamp=time.time())


class AnswerSink:
    """Answers appended to the answer file as they finish; a progress bar; the token count."""

    def __init__(self, path: Path, total: int, desc: str, write: bool = True,
                 order: Sequence[QuestionId] = ()) -> None:
        """`order`: the bench's question keys in file order (string ids are sorted by it)."""
        from tqdm import tqdm

        self.path, self.tokens, self.order = path, 0, order
        self.appender = JsonlAppender(path) if write else None
        self.bar = tqdm(total=total, desc=desc, unit="q", disable=not write)

    def take(self, answers: Sequence[Answer], tokens: int) -> None:
        self.tokens += tokens
        if self.appender is not None:
            for answer in answers:
                self.appender.write(answer.to_json())
        self.bar.update(len(answers))

    def close(self) -> None:
        """Close the file and sort it (FastChat's reorg_answer_file)."""
        self.bar.close()
        if self.appender is not None:
            self.appender.close()
            reorganize_answer_file(self.path, self.order)


def reorganize_answer_file(path: Path, order: Sequence[QuestionId] = ()) -> None:
    """FastChat's reorg_answer_file: one line per question (last wins; 1 and "1" are one),
    sorted by id (`types.sort_question_keys`: string ids keep `order`, the question file's),
    bytes kept."""
    by_qid: dict[QuestionId, str] = {}
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            by_qid[question_key(json.loads(line)["question_id"])] = line
    write_lines_atomic(path, [by_qid[qid] for qid in sort_question_keys(by_qid, order)])


def drive(engine: Engine, work: Work, sink: AnswerSink) -> None:
    """One process: step `work` until done, answers into `sink` (closed by the caller)."""
    while True:
        answers, tokens, busy = work.advance(SYNC_STEPS)
        sink.take(answers, tokens)
        if not busy:
            return
