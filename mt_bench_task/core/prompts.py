"""FastChat's judge, minus the API: which prompt each match gets, the exact prompt text, and the
rating / verdict extraction. Pure functions; `judging.py` sends the requests.

Every rule here is FastChat llm_judge's (common.py, gen_judgment.py), kept byte for byte because a
published MT-bench score only means something under exactly these prompts and parsers.
"""
from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from mt_bench_task.core.bench import NEED_REF_CATS, judges_turn_2, reference_set
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.ids import QuestionId, question_key
from mt_bench_task.core.thoughts import strip_thoughts
from mt_bench_task.core.types import API_ERROR_OUTPUT, Answer, JudgePrompt, Question, Score

Mode = Literal["single", "pairwise-baseline", "pairwise-all"]
MODES: tuple[Mode, ...] = ("single", "pairwise-baseline", "pairwise-all")
TIE_DELTA = 0.1
__all__ = ["API_ERROR_OUTPUT", "NEED_REF_CATS"]  # re-exported: their home is types / bench

ONE_SCORE = re.compile(r"\[\[(\d+\.?\d*)\]\]")
ONE_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*)\]")
TWO_SCORE = re.compile(r"\[\[(\d+\.?\d*),\s?(\d+\.?\d*)\]\]")
TWO_SCORE_BACKUP = re.compile(r"\[(\d+\.?\d*),\s?(\d+\.?\d*)\]")

# prompt name per (mode kind, needs reference, turn); FastChat's make_judge_single / _pairwise
PROMPT_NAMES = {
    ("single", False, 1): "single-v1",
    ("single", True, 1): "single-math-v1",
    ("single", False, 2): "single-v1-multi-turn",
    ("single", True, 2): "single-math-v1-multi-turn",
    ("pairwise", False, 1): "pair-v2",
    ("pairwise", True, 1): "pair-math-v1",
    ("pairwise", False, 2): "pair-v2-multi-turn",
    ("pairwise", True, 2): "pair-math-v1-multi-turn",
}


@dataclass(frozen=True)
class Match:
    """One judgment to make: a question, a turn, one answer (single) or two (pairwise)."""

    question: Question
    turn: int
    prompt: JudgePrompt
    model_1: str
    answer_1: Answer
    model_2: str | None = None
    answer_2: Answer | None = None
    reference: Answer | None = None

    @property
    def pairwise(self) -> bool:
        return self.model_2 is not None

    @property
    def key(self) -> tuple:
        """Identity used for resume: the same key in the judgment file means already done."""
        return (question_key(self.question.question_id), self.turn, self.model_1,
                self.model_2 or "", self.prompt.name)


def build_matches(questions: list[Question], answers: dict[str, dict[QuestionId, Answer]],
                  models: list[str], prompts: Mapping[str, JudgePrompt], mode: Mode,
                  judge_model: str, references: Mapping[str, Mapping[QuestionId, Answer]],
                  baseline_model: str | None = None,
                  need_ref: Iterable[str] = NEED_REF_CATS) -> list[Match]:
    """All matches in FastChat's order: T1-default, T1-math, T2-default, T2-math, each block
    questions x models (pairwise-baseline: model vs baseline; pairwise-all: every pair i<j).
    Questions in `need_ref` categories (the bench's) get the -math- prompts and a reference.
    Judge prompts without a multi-turn prompt judge turn 1 only (`bench.judges_turn_2`).
    `answers` and `references` are keyed by `question_key` (1 and "1" are one question)."""
    need_ref = tuple(need_ref)
    kind = "single" if mode == "single" else "pairwise"
    if mode == "single":
        pairs: list[tuple[str, str | None]] = [(m, None) for m in models]
    elif mode == "pairwise-baseline":
        if baseline_model is None:
            raise ParameterError("mode pairwise-baseline needs a baseline_model", "mode", "baseline_model")
        pairs = [(m, baseline_model) for m in models if m != baseline_model]
    else:
        pairs = [(models[i], models[j]) for i in range(len(models)) for j in range(i + 1, len(models))]
    matches: list[Match] = []
    for turn in (1, 2) if judges_turn_2(prompts, mode) else (1,):
        for with_ref in (False, True):
            block = [q for q in questions if (q.category in need_ref) == with_ref
                     and (turn == 1 or len(q.turns) == 2)]
            # looked up only when used: a single-turn bench needs no multi-turn prompts
            prompt = _prompt(prompts, PROMPT_NAMES[(kind, with_ref, turn)]) if block else None
            for q in block:
                assert prompt is not None
                ref = _reference(references, judge_model, q) if with_ref else None
                for m1, m2 in pairs:
                    a1 = _answer(answers, m1, q, turn)
                    a2 = _answer(answers, m2, q, turn) if m2 else None
                    if a1 is None or (m2 and a2 is None):
                        continue  # partial answers: judging.check_answers decides if that is ok
                    matches.append(Match(q, turn, prompt, m1, a1, m2, a2, ref))
    return matches


def _answer(answers: dict[str, dict[QuestionId, Answer]], model: str, q: Question,
            turn: int) -> Answer | None:
    a = answers.get(model, {}).get(q.key)
    return a if a is not None and a.choices and len(a.turns) >= turn else None


def _prompt(prompts: Mapping[str, JudgePrompt], name: str) -> JudgePrompt:
    if name not in prompts:
        raise DataError(f"judge prompts file has no prompt named {name!r} (it has: "
                        f"{', '.join(prompts) or 'none'})")
    return prompts[name]


def _reference(references: Mapping[str, Mapping[QuestionId, Answer]], judge_model: str,
               q: Question) -> Answer:
    _, refs = reference_set(references, judge_model)
    if q.key not in refs:
        raise DataError(f"no reference answer for question {q.question_id} ({q.category}) "
                        f"for judge {judge_model!r}: add reference_answer/{judge_model}.jsonl "
                        f"(or choose them with references: inline or a FastChat reference file)")
    return refs[q.key]


def _fill(match: Match, answer_a: Answer, answer_b: Answer | None) -> str:
    """str.format with FastChat's keyword names; unused keywords are ignored by format().
    Every judge prompt is made here, so here a thought inline in an answer turn (a file of
    another tool) is taken out (`thoughts.strip_thoughts`); our own files hold none there."""
    q, kwargs = match.question, {}
    if match.reference is not None:
        kwargs["ref_answer_1"] = match.reference.turns[0]
        if match.turn == 2:
            if len(match.reference.turns) < 2:
                raise DataError(f"the reference answer for question {q.question_id} has no "
                                f"turn 2, which its turn-2 prompt needs")
            kwargs["ref_answer_2"] = match.reference.turns[1]
    a = [strip_thoughts(t) for t in answer_a.turns[:match.turn]]  # the judge never sees a thought
    b = [strip_thoughts(t) for t in answer_b.turns[:match.turn]] if answer_b is not None else []
    if match.turn == 2:
        kwargs.update(question_1=q.turns[0], question_2=q.turns[1])
        if answer_b is None:
            kwargs.update(answer_1=a[0], answer_2=a[1])
        else:
            kwargs.update(answer_a_1=a[0], answer_b_1=b[0], answer_a_2=a[1], answer_b_2=b[1])
    else:
        kwargs["question"] = q.turns[0]
        if answer_b is None:
            kwargs["answer"] = a[0]
        else:
            kwargs.update(answer_a=a[0], answer_b=b[0])
    return match.prompt.prompt_template.format(**kwargs)


def user_prompts(match: Match) -> list[str]:
    """The user prompt(s) of a match: one for single, [g1 (model_1 as A), g2 (swapped)] for pairs."""
    if not match.pairwise:
        return [_fill(match, match.answer_1, None)]
    assert match.answer_2 is not None
    return [_fill(match, match.answer_1, match.answer_2), _fill(match, match.answer_2, match.answer_1)]


def messages(prompt: JudgePrompt, user_prompt: str) -> list[dict[str, str]]:
    """FastChat's OpenAI judge request: the chatgpt template with the prompt's system message."""
    msgs = [{"role": "system", "content": prompt.system_prompt}] if prompt.system_prompt else []
    return msgs + [{"role": "user", "content": user_prompt}]


def extract_rating(judgment: str) -> Score:
    """`[[x]]` first, `[x]` only if there is none anywhere; first match; int vs float kept; -1."""
    m = ONE_SCORE.search(judgment) or ONE_SCORE_BACKUP.search(judgment)
    return ast.literal_eval(m.groups()[0]) if m else -1


def extract_verdict(judgment: str, output_format: str) -> str:
    """'A', 'B', 'tie' or 'error' (letters are positions; see `map_winner`)."""
    if output_format == "[[A]]":
        # substring priority, as FastChat: a judgment restating the format counts as A
        for token, verdict in (("[[A]]", "A"), ("[[B]]", "B"), ("[[C]]", "tie")):
            if token in judgment:
                return verdict
        return "error"
    if output_format == "[[rating_a,rating_b]]":
        m = TWO_SCORE.search(judgment) or TWO_SCORE_BACKUP.search(judgment)
        if not m:
            return "error"
        a, b = (ast.literal_eval(s.strip()) for s in m.groups())
        return "tie" if abs(a - b) <= TIE_DELTA else ("A" if a > b else "B")
    raise DataError(f"unknown pairwise output_format {output_format!r}")


def map_winner(verdict: str, game: int) -> str:
    """Position letter -> 'model_1'/'model_2' (game 2 has the answers swapped); tie/error pass."""
    mapping = {"A": "model_1", "B": "model_2"} if game == 1 else {"A": "model_2", "B": "model_1"}
    return mapping.get(verdict, verdict)
