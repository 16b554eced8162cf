"""Stage 1, data: MT-bench questions, GPT-4 references, judge prompts and answer files.

Dataset: the packaged HF dataset folder (`dataset_path()`), FastChat's files byte for byte.
Paper: Zheng et al., "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena", arXiv:2306.05685.
Every path resolves from a data dir (FastChat's `data/<bench>` layout), never from the cwd.
"""
from __future__ import annotations

from pathlib import Path

from .jsonl import DataError, read_jsonl
from .types import Answer, JudgePrompt, Question

BENCH_NAME = "mt_bench"
DATASET_ID = "mt_bench_task/mt_bench"  # dataset id written into model cards (model-index)
DATASET_REVISION = "fastchat-0e6d3e4"  # FastChat commit the data files were taken from
JUDGE_PROMPTS_VERSION = "judge_prompts.jsonl@7ad1d638"
CATEGORIES = ("writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities")
# FastChat's gen_model_answer.temperature_config; any other category samples at 0.7.
TEMPERATURE_CONFIG = {
    "writing": 0.7, "roleplay": 0.7, "extraction": 0.0, "math": 0.0, "coding": 0.0,
    "reasoning": 0.0, "stem": 0.1, "humanities": 0.1, "arena-hard-200": 0.0,
}
DEFAULT_TEMPERATURE = 0.7
_PACKAGE_DATA = Path(__file__).parent / "data"


def dataset_path() -> Path:
    """Folder to pass to `datasets.load_dataset(str(dataset_path()), "question", split="train")`."""
    return _PACKAGE_DATA / "mt_bench"


def official_answers_dir() -> Path:
    """The official answers of 6 leaderboard models (gpt-3.5-turbo: the default baseline)."""
    return _PACKAGE_DATA / "official_answers"


def official_grades_file() -> Path:
    """The official GPT-4 single grades of the 34 published leaderboard models (SOURCE.md)."""
    return _PACKAGE_DATA / "official_grades" / "gpt-4_single_scores.jsonl"


def temperature_for(category: str) -> float:
    return TEMPERATURE_CONFIG.get(category, DEFAULT_TEMPERATURE)


def questions_file(data_dir: Path | None = None) -> Path:
    """`DATA_DIR/question.jsonl` when the user has one (a custom bench), else the packaged one."""
    if data_dir is not None and (Path(data_dir) / "question.jsonl").is_file():
        return Path(data_dir) / "question.jsonl"
    return dataset_path() / "data" / "question.jsonl"


def load_questions(data_dir: Path | None = None, begin: int | None = None,
                   end: int | None = None) -> list[Question]:
    """Questions in file order; `begin`/`end` slice like FastChat's --question-begin/--question-end."""
    questions = read_jsonl(questions_file(data_dir), Question.from_dict)
    return questions[begin:end]


def load_references(data_dir: Path | None = None) -> dict[str, dict[int, Answer]]:
    """{judge name: {question_id: reference answer}}; FastChat keys references by the file stem."""
    ref_dir = Path(data_dir) / "reference_answer" if data_dir is not None else None
    if ref_dir is not None and ref_dir.is_dir():
        files = sorted(ref_dir.glob("*.jsonl"))
        return {f.stem: {a.question_id: a for a in read_jsonl(f, Answer.from_dict)} for f in files}
    packaged = dataset_path() / "data" / "reference_answer_gpt-4.jsonl"
    return {"gpt-4": {a.question_id: a for a in read_jsonl(packaged, Answer.from_dict)}}


def default_judge_file() -> Path:
    return dataset_path() / "data" / "judge_prompts.jsonl"


def load_judge_prompts(path: Path | str | None = None) -> dict[str, JudgePrompt]:
    path = Path(path) if path else default_judge_file()
    prompts = read_jsonl(path, JudgePrompt.from_dict)
    known = {"[[rating]]", "[[A]]", "[[rating_a,rating_b]]"}
    for lineno, p in enumerate(prompts, 1):
        if p.output_format not in known:
            raise DataError(f"{path}:{lineno}: judge prompt {p.name!r} has unknown output_format "
                            f"{p.output_format!r} (expected one of {sorted(known)})")
    return {p.name: p for p in prompts}


def answer_file(data_dir: Path, model_id: str) -> Path:
    return Path(data_dir) / "model_answer" / f"{model_id}.jsonl"


def load_answers(data_dir: Path, model_id: str) -> dict[int, Answer]:
    """One model's answers by question id; the last line per id wins (FastChat's reorg rule).

    Falls back to the packaged official answers (gpt-4, gpt-3.5-turbo and 4 more).
    """
    path = answer_file(data_dir, model_id)
    if not path.is_file() and (official_answers_dir() / f"{model_id}.jsonl").is_file():
        path = official_answers_dir() / f"{model_id}.jsonl"
    if not path.is_file():
        raise DataError(f"no answers for model {model_id!r}: {path} not found")
    return {a.question_id: a for a in read_jsonl(path, Answer.from_dict)}


# A turn that says this failed: FastChat's local generation writes "ERROR", its API paths "$ERROR$".
FAILED_TURN_TEXTS = ("ERROR", "$ERROR$")


def pending_questions(questions: list[Question], path: Path, num_choices: int) -> list[Question]:
    """Questions without a complete answer in `path`: `num_choices` choices, every turn, no failed
    turn (those are asked again). A malformed line is a DataError naming file:line (the file is
    left as is); only a torn last line without newline (a write cut by kill -9) is dropped."""
    if not Path(path).is_file():
        return list(questions)
    answered = {a.question_id: a for a in read_jsonl(path, Answer.from_dict,
                                                     repair_torn_tail=True)}
    return [q for q in questions if not _complete(answered.get(q.question_id), q, num_choices)]


def _complete(answer: Answer | None, question: Question, num_choices: int) -> bool:
    if answer is None or len(answer.choices) < num_choices:
        return False
    return all(len(c.turns) >= len(question.turns) and not set(FAILED_TURN_TEXTS) & set(c.turns)
               for c in answer.choices[:num_choices])


def list_answer_models(data_dir: Path) -> list[str]:
    """FastChat's default --model-list: every answer file stem (sorted, so runs are reproducible)."""
    return sorted(p.stem for p in (Path(data_dir) / "model_answer").glob("*.jsonl"))
