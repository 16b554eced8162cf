"""Stage 1, data: the low-level readers of FastChat's files (questions, references, judge prompts,
answers, judgments), each returning typed records and naming file:line on a bad line.

Which files make up a benchmark is decided once, in `bench.load_bench`; the stages take that
`Bench` value. Every path resolves from a data dir (FastChat's `data/<bench>` layout), never
from the cwd.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import QuestionId, id_text, model_file_stem, model_id_of_stem
from mt_bench_task.core.jsonl import read_jsonl, read_jsonl_lines
from mt_bench_task.core.types import Answer, JudgePrompt, Judgment, PairJudgment, Question, SingleJudgment

PAIR_FORMATS = ("[[A]]", "[[rating_a,rating_b]]")  # FastChat's two pairwise formats
OUTPUT_FORMATS = ("[[rating]]", *PAIR_FORMATS)
# a single-answer prompt may name the rating in the bench's language ("[[評価]]", "[[평가]]", as
# the Japanese and Korean forks accept); the rating is read with FastChat's patterns either way
SINGLE_FORMAT = re.compile(r"\[\[[^\[\]\d]+\]\]")


def read_questions(path: Path) -> list[Question]:
    return read_jsonl(path, Question.from_dict)


def check_unique_ids(questions: Iterable[Question], where: str) -> None:
    """A question id twice would judge or score one question as two: refuse it."""
    from collections import Counter

    dup = id_text({k for k, n in Counter(q.key for q in questions).items() if n > 1})  # 1 == "1"
    if dup:
        raise DataError(f"{where}: question id(s) {dup[:5]} appear more than once")


def read_references(files: Iterable[Path]) -> dict[str, dict[QuestionId, Answer]]:
    """{file stem: {question key: reference}}; FastChat keys references by the judge's name."""
    return {Path(f).stem: {a.key: a for a in read_answers(f)} for f in files}


def read_judge_prompts(path: Path) -> dict[str, JudgePrompt]:
    """A judge prompts file; a prompt whose type or output_format FastChat's judge cannot read
    (single: `[[rating]]` or the rating named in the bench's language; pairwise: `[[A]]` or
    `[[rating_a,rating_b]]`) is a DataError naming file:line."""
    lines = read_jsonl_lines(path, JudgePrompt.from_dict)
    numbers = _line_numbers(path)
    for (_, p), lineno in zip(lines, numbers):
        fmt = p.output_format
        if p.type == "single":
            ok = fmt not in PAIR_FORMATS and SINGLE_FORMAT.fullmatch(fmt) is not None
            expected = "[[rating]], or the rating named in the bench's language, e.g. [[評価]]"
        elif p.type == "pairwise":
            ok, expected = fmt in PAIR_FORMATS, " or ".join(PAIR_FORMATS)
        else:
            raise DataError(f"{path}:{lineno}: judge prompt {p.name!r} has unknown type "
                            f"{p.type!r} (expected single or pairwise)")
        if not ok:
            raise DataError(f"{path}:{lineno}: {p.type} judge prompt {p.name!r} has unknown "
                            f"output_format {fmt!r} (expected {expected})")
    return {p.name: p for _, p in lines}


def _line_numbers(path: Path) -> list[int]:
    """The 1-based numbers of the non-blank lines (the records read_jsonl returns, in order)."""
    return [i for i, line in enumerate(Path(path).read_bytes().split(b"\n"), 1) if line.strip()]


def read_answers(path: Path, repair_torn_tail: bool = False) -> list[Answer]:
    """An answer file's records in file order (FastChat needs only question_id and
    choices[0].turns; other keys are kept)."""
    return read_jsonl(path, Answer.from_dict, repair_torn_tail=repair_torn_tail)


def read_single_judgments(path: Path, repair_torn_tail: bool = False) -> list[SingleJudgment]:
    return read_jsonl(path, _single, repair_torn_tail=repair_torn_tail)


def read_pair_judgments(path: Path, repair_torn_tail: bool = False) -> list[PairJudgment]:
    return read_jsonl(path, _pair, repair_torn_tail=repair_torn_tail)


def read_judgments(path: Path, mode: str, repair_torn_tail: bool = False) -> Sequence[Judgment]:
    """The judgment file of a mode ("single", or a pairwise mode)."""
    if mode == "single":
        return read_single_judgments(path, repair_torn_tail)
    return read_pair_judgments(path, repair_torn_tail)


def unique_judgments(records: Sequence[Judgment]) -> tuple[list[Judgment], int]:
    """Each judgment once by its key (question, model(s), turn, judge, prompt, repeat), where
    the key first appears: a file two runs wrote to holds some twice. The last rating of a key wins ($ERROR$
    only when nothing else has the key). Returns the records kept and how many were dropped."""
    keep: dict[tuple, Judgment] = {}  # in the order keys first appear (the bootstrap's order)
    for r in records:
        key = (*r.key, r.judge[0])
        if key not in keep or not r.failed or keep[key].failed:
            keep[key] = r
    return list(keep.values()), len(records) - len(keep)


def judgment_lines(path: Path, mode: str) -> list[tuple[str, Judgment]]:
    """Each record of a judgment file with its line as written (to rewrite the file keeping the
    bytes of the lines that stay)."""
    return read_jsonl_lines(path, _single if mode == "single" else _pair)


def _single(d: dict[str, Any]) -> SingleJudgment:
    if "score" not in d and "g1_winner" in d:
        raise ValueError("a pairwise judgment, not a single-mode one "
                         "(read it with mode pairwise-baseline or pairwise-all)")
    return SingleJudgment.from_dict(d)


def _pair(d: dict[str, Any]) -> PairJudgment:
    if "g1_winner" not in d and "score" in d:
        raise ValueError("a single-mode judgment, not a pairwise one (read it with mode single)")
    return PairJudgment.from_dict(d)


def answer_file(data_dir: Path, model_id: str) -> Path:
    """A model's answer file, to read or to write: `model_answer/<model_file_stem>.jsonl`, or the
    nested `model_answer/org/name.jsonl` that FastChat writes for a repo id when only that one
    exists (so its runs resume in place). A DataError for an id that cannot name a file."""
    answers = Path(data_dir) / "model_answer"
    flat = answers / f"{model_file_stem(model_id)}.jsonl"
    nested = answers / f"{model_id}.jsonl"
    return nested if "/" in model_id and not flat.exists() and nested.is_file() else flat


def judgment_file(data_dir: Path, judge_model: str, mode: str) -> Path:
    suffix = "single" if mode == "single" else "pair"
    return Path(data_dir) / "model_judgment" / f"{safe_name(judge_model)}_{suffix}.jsonl"


def safe_name(judge_model: str) -> str:
    """A local judge given as a path becomes a file-name-safe name."""
    return judge_model.rstrip("/").replace("/", "__")


def load_answers(data_dir: Path, model_id: str,
                 fallback_dir: Path | None = None) -> dict[QuestionId, Answer]:
    """One model's answers by question key; the last line per id wins (FastChat's reorg rule).

    Falls back to `fallback_dir/<model>.jsonl` (a bench's official answers) when DATA_DIR has none.
    """
    path = find_answer_file(data_dir, model_id, fallback_dir)
    if path is None:
        raise DataError(f"no answers for model {model_id!r}: "
                        f"{answer_file(data_dir, model_id)} not found")
    return {a.key: a for a in read_answers(path)}


def answer_notes(data_dir: Path, models: Iterable[str], fallback_dir: Path | None = None
                 ) -> list[str]:
    """Per model with an answer file: turns that thought, thoughts cut off (empty answers),
    turns cut by the token limit (`thoughts.AnswerCounts.note`); models whose answers did
    neither, or that have no answer file here, say nothing."""
    from mt_bench_task.core.thoughts import count_answers

    notes = []
    for model in models:
        try:
            answers = load_answers(data_dir, model, fallback_dir).values()
        except DataError:  # judged elsewhere, or a pairwise baseline without answers here
            continue
        note = count_answers(answers).note(model)
        notes += [note] if note else []
    return notes


def find_answer_file(data_dir: Path, model_id: str, fallback_dir: Path | None = None
                     ) -> Path | None:
    """The answer file `load_answers` reads (DATA_DIR's, else `fallback_dir`'s), None if none."""
    path = answer_file(data_dir, model_id)
    official = fallback_dir / f"{model_file_stem(model_id)}.jsonl" if fallback_dir else None
    return path if path.is_file() else official if official and official.is_file() else None


def pending_questions(questions: list[Question], path: Path, num_choices: int) -> list[Question]:
    """Questions without a complete answer in `path`: `num_choices` choices, every turn, no failed
    turn (those are asked again). A malformed line is a DataError naming file:line (the file is
    left as is); only a torn last line without newline (a write cut by kill -9) is dropped."""
    if not Path(path).is_file():
        return list(questions)
    answered = {a.key: a for a in read_answers(path, repair_torn_tail=True)}
    return [q for q in questions if not _complete(answered.get(q.key), q, num_choices)]


def _complete(answer: Answer | None, question: Question, num_choices: int) -> bool:
    if answer is None or len(answer.choices) < num_choices:
        return False
    return all(len(c.turns) >= len(question.turns) and not c.failed
               for c in answer.choices[:num_choices])


def list_answer_models(data_dir: Path) -> list[str]:
    """FastChat's default --model-list: the model id of every answer file (sorted, so runs are
    reproducible): `org%2Fname.jsonl` is org/name, as is FastChat's nested org/name.jsonl."""
    root = Path(data_dir) / "model_answer"
    ids = {model_id_of_stem(p.stem) for p in root.glob("*.jsonl")}
    ids |= {p.relative_to(root).with_suffix("").as_posix() for p in root.glob("*/**/*.jsonl")}
    return sorted(ids)
