"""The benchmark as one value: `Bench` (questions, references, judge prompts, categories,
temperatures, publishing ids), resolved once by `load_bench` and passed to every stage.

Benches: `mt_bench` (80 two-turn questions, 8 categories) and `vicuna_bench` (80 single-turn
questions, 9 categories), FastChat llm_judge's two, packaged as HF dataset folders; or any folder
in FastChat's layout (`question.jsonl`, `reference_answer/<judge>.jsonl`, `judge_prompts.jsonl`),
e.g. a translated MT-bench. Paper: Zheng et al., arXiv:2306.05685.
This module is the one home of the bench rules: category order, the categories that need a
reference, the per-category temperatures, the dataset ids.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from mt_bench_task.core.data import check_unique_ids, read_judge_prompts, read_questions, read_references
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import QuestionId, id_text
from mt_bench_task.core.types import Answer, Choice, JudgePrompt, Question

# FastChat keys reference answers by judge; its packaged ones are GPT-4's (reference_answer/gpt-4.jsonl)
REFERENCE_JUDGE = "gpt-4"

DEFAULT_BENCH = "mt_bench"
# FastChat's common.NEED_REF_CATS: these categories are judged with the -math- prompts + reference
NEED_REF_CATS = ("math", "reasoning", "coding", "arena-hard-200")
# FastChat's gen_model_answer.temperature_config; any other category samples at 0.7.
TEMPERATURE_CONFIG: Mapping[str, float] = MappingProxyType({
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
    "reasoning": 0.0, "stem": 0.1, "humanities": 0.1, "arena-hard-200": 0.0,
})
DEFAULT_TEMPERATURE = 0.7
JUDGE_PROMPTS_VERSION = "judge_prompts.jsonl@7ad1d638"  # FastChat commit of the packaged prompts
_PACKAGE_DATA = Path(__file__).parent.parent / "data"
# packaged bench -> (dataset id written into model cards, revision the files were taken from)
PACKAGED: Mapping[str, tuple[str, str]] = MappingProxyType({
    "mt_bench": ("mt_bench_task/mt_bench", "fastchat-0e6d3e4"),
    "vicuna_bench": ("mt_bench_task/vicuna_bench", "fastchat-0e6d3e4"),
})


def dataset_path(name: str = DEFAULT_BENCH) -> Path:
    """Folder to pass to `datasets.load_dataset(str(dataset_path()), "question", split="train")`."""
    if name not in PACKAGED:
        raise DataError(f"no packaged bench {name!r} (packaged: {', '.join(PACKAGED)})")
    return _PACKAGE_DATA / name


def official_answers_dir() -> Path:
    """The official MT-bench answers of 6 leaderboard models (gpt-4, gpt-3.5-turbo: the default
    pairwise baseline; all 6: `mt-bench calibrate`'s reference set)."""
    return _PACKAGE_DATA / "official_answers"


def official_grades_file() -> Path:
    """The official GPT-4 single grades of the 34 published MT-bench models (see SOURCE.md)."""
    return _PACKAGE_DATA / "official_grades" / "gpt-4_single_scores.jsonl"


@dataclass(frozen=True)
class Bench:
    """Everything a stage needs to know about the benchmark (build it with `load_bench`)."""

    name: str
    questions: tuple[Question, ...]  # file order
    references: Mapping[str, Mapping[QuestionId, Answer]]  # {judge name: {question key: reference}}
    judge_prompts: Mapping[str, JudgePrompt]  # by name
    categories: tuple[str, ...]  # display order: first appearance in the questions
    temperatures: Mapping[str, float] = field(default_factory=lambda: TEMPERATURE_CONFIG)
    default_temperature: float = DEFAULT_TEMPERATURE
    need_ref_categories: tuple[str, ...] = NEED_REF_CATS
    dataset_id: str = PACKAGED[DEFAULT_BENCH][0]  # model-index dataset type
    dataset_revision: str | None = PACKAGED[DEFAULT_BENCH][1]
    judge_prompts_version: str = JUDGE_PROMPTS_VERSION
    official_answers: Path | None = None  # fallback answer files (MT-bench's 6 official models)
    sources: Mapping[str, str] = field(default_factory=dict)  # what -> file(s) it came from
    references_label: str | None = None  # `--references`: "inline" or a file's name (`with_references`)

    @property
    def multi_turn(self) -> bool:
        """Two-turn questions whose turn 2 is judged (single mode): the judge prompts have a
        multi-turn prompt (a set with none, like the Japanese jp-stable one, is judged on turn 1)."""
        return any(len(q.turns) > 1 for q in self.questions) and self.judges_turn_2("single")

    def judges_turn_2(self, mode: str = "single") -> bool:
        return judges_turn_2(self.judge_prompts, mode)

    def turn_2_note(self, mode: str = "single") -> str | None:
        """What the dry run and the plan say when the bench is judged on turn 1 only."""
        if any(len(q.turns) > 1 for q in self.questions) and not self.judges_turn_2(mode):
            return "turn 1 only: the judge prompts have no multi-turn prompt"
        return None

    @property
    def fastchat_prompts(self) -> bool:
        """Whether the judge prompts are FastChat's packaged ones (content, not path)."""
        return dict(self.judge_prompts) == read_judge_prompts(packaged_judge_prompts())

    @property
    def category_of(self) -> dict[QuestionId, str]:
        """{question key: category} (`types.question_key`: 1 and "1" are one question)."""
        return {q.key: q.category for q in self.questions}

    def select(self, begin: int | None = None, end: int | None = None) -> list[Question]:
        """Questions in file order, sliced like FastChat's --question-begin/--question-end."""
        return list(self.questions[begin:end])

    def temperature(self, category: str) -> float:
        """FastChat's per-category temperature (the local generator's rule)."""
        return self.temperatures.get(category, self.default_temperature)

    def api_temperature(self, question: Question, force: float | None = None) -> float:
        """gen_api_answer's precedence: force, the question's required_temperature, category."""
        required = question.extra.get("required_temperature")
        if force is not None and required is not None:
            raise DataError(f"force_temperature {force} conflicts with question "
                            f"{question.question_id}'s required_temperature {required}")
        return float(force if force is not None else
                     required if required is not None else self.temperature(question.category))

    def needs_reference(self, question: Question) -> bool:
        return question.category in self.need_ref_categories

    def reference_for(self, judge_model: str) -> tuple[str | None, Mapping[QuestionId, Answer]]:
        return reference_set(self.references, judge_model)


def judges_turn_2(prompts: Mapping[str, JudgePrompt], mode: str = "single") -> bool:
    """FastChat judges turn 2 with the -multi-turn prompts of the mode's type; judge prompts with
    none (jp-stable's judge_ja_prompts.jsonl) judge turn 1 only, as that fork does."""
    kind = "single" if mode == "single" else "pairwise"
    return any(p.multi_turn and p.type == kind for p in prompts.values())


INLINE = "inline"


def with_references(bench: Bench, choice: str | Path | None) -> Bench:
    """`--references`: None keeps FastChat's (the judge's reference file). "inline" fills the
    reference slots from the question file's own inline `reference` lists (FastChat's
    question.jsonl carries 39, right where reference_answer/gpt-4.jsonl is wrong, and FastChat
    never reads them); a question without a usable one (one text per turn) keeps the judge's
    file's. A FILE is any FastChat reference file, whatever judge it was made for. The choice is
    `references_label` ("inline" or the file's name), recorded in every judgment."""
    if choice is None:
        return bench
    if str(choice) == INLINE:
        inline = {q.key: Answer(q.question_id, None, INLINE, [Choice(0, ref)])
                  for q in bench.questions
                  if (ref := q.inline_reference) is not None and len(ref) >= len(q.turns)}
        kept = [q.key for q in bench.questions if q.key not in inline and bench.needs_reference(q)]
        refs = {name: {**by_id, **inline} for name, by_id in bench.references.items()} or {INLINE: inline}
        source = "inline (question.jsonl's `reference`)" + (
            f"; {_ids(kept)} without one keep {bench.sources.get('references', 'none')}"
            if kept else "")
        label = INLINE
    else:
        path = Path(choice)
        refs = {path.stem: read_references([path])[path.stem]}
        source, label = str(path), path.name
    return replace(bench, references=MappingProxyType(
        {k: MappingProxyType(dict(v)) for k, v in refs.items()}),
        sources=MappingProxyType({**bench.sources, "references": source}),
        references_label=label)


def _ids(ids: list[QuestionId]) -> str:
    shown = ", ".join(map(str, id_text(ids)[:8]))
    return f"question{'s' if len(ids) > 1 else ''} {shown}{', ...' if len(ids) > 8 else ''}"


def order_categories(present: Iterable[str], category_order: Sequence[str]) -> list[str]:
    """The bench's category order (`Bench.categories`) first, then other names (e.g. "unknown")
    alphabetically."""
    present = set(present)
    return [c for c in category_order if c in present] + sorted(present - set(category_order))


def reference_set(references: Mapping[str, Mapping[QuestionId, Answer]],
                  judge_model: str) -> tuple[str | None, Mapping[QuestionId, Answer]]:
    """FastChat keys references by judge name; other judges reuse gpt-4's (FastChat: KeyError),
    else the only set there is."""
    for name in (judge_model, REFERENCE_JUDGE, *sorted(references)):
        if name in references:
            return name, references[name]
    return None, {}


def load_bench(name: str = DEFAULT_BENCH, data_dir: Path | str | None = None,
               judge_file: Path | str | None = None) -> Bench:
    """Resolve a bench: the data dir's own `question.jsonl`, `reference_answer/<judge>.jsonl` and
    `judge_prompts.jsonl` win over the packaged ones (per file; `judge_file` wins over both).
    A name that is not packaged needs a data dir with its own `question.jsonl`.
    `Bench.sources` says which files were used."""
    d = Path(data_dir) if data_dir is not None else None
    packaged = dataset_path(name) / "data" if name in PACKAGED else None
    own_questions = d / "question.jsonl" if d is not None else None
    if own_questions is not None and own_questions.is_file():
        questions_path = own_questions
    elif packaged is not None:
        questions_path = packaged / "question.jsonl"
    else:
        where = f"{own_questions} not found" if own_questions else "no data dir given"
        raise DataError(f"unknown bench {name!r}: not packaged ({', '.join(PACKAGED)}) and {where}")
    questions = tuple(read_questions(questions_path))
    if not questions:
        raise DataError(f"{questions_path}: no questions")
    check_unique_ids(questions, str(questions_path))

    references: dict[str, Mapping[QuestionId, Answer]] = {}
    ref_sources: list[str] = []
    if packaged is not None:  # the packaged file's stem is not the judge name: name it
        ref = packaged / "reference_answer_gpt-4.jsonl"
        references[REFERENCE_JUDGE] = read_references([ref])[ref.stem]
        ref_sources.append(str(ref))
    own_refs = sorted((d / "reference_answer").glob("*.jsonl")) if d is not None else []
    references.update(read_references(own_refs))
    ref_sources += map(str, own_refs)

    prompts_path = _judge_prompts_path(d, judge_file)
    packaged_prompts = prompts_path == packaged_judge_prompts()
    if packaged is not None and questions_path.parent == packaged:
        dataset_id, revision = PACKAGED[name]
    else:  # a user's bench: its name, and the question file's hash as the revision
        dataset_id, revision = name, f"sha256:{_sha(questions_path)}"
    return Bench(
        name=name, questions=questions,
        references=MappingProxyType({k: MappingProxyType(dict(v)) for k, v in references.items()}),
        judge_prompts=MappingProxyType(read_judge_prompts(prompts_path)),
        categories=tuple(dict.fromkeys(q.category for q in questions)),
        dataset_id=dataset_id, dataset_revision=revision,
        judge_prompts_version=(JUDGE_PROMPTS_VERSION if packaged_prompts
                               else f"{prompts_path.name}@sha256:{_sha(prompts_path)}"),
        official_answers=official_answers_dir() if dataset_id == PACKAGED["mt_bench"][0] else None,
        sources=MappingProxyType({"questions": str(questions_path),
                                  "references": ", ".join(ref_sources) or "none",
                                  "judge_prompts": str(prompts_path)}))


def packaged_judge_prompts() -> Path:
    """FastChat's judge_prompts.jsonl (one file for all benches, shipped with mt_bench)."""
    return dataset_path(DEFAULT_BENCH) / "data" / "judge_prompts.jsonl"


def _judge_prompts_path(data_dir: Path | None, judge_file: Path | str | None) -> Path:
    if judge_file is not None:
        if not Path(judge_file).is_file():
            raise DataError(f"{judge_file}: judge prompts file not found")
        return Path(judge_file)
    if data_dir is not None and (data_dir / "judge_prompts.jsonl").is_file():
        return data_dir / "judge_prompts.jsonl"
    return packaged_judge_prompts()  # FastChat keeps one judge_prompts.jsonl for all benches


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]
