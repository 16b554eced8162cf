"""Read an inspect log of the `mt_bench` task; write FastChat's files from it (needs `[inspect]`).

    DATA_DIR/model_answer/<model_id>.jsonl             the model's answers (FastChat answer records)
    DATA_DIR/model_judgment/<judge>_single.jsonl       or <judge>_pair.jsonl: FastChat judgments

so `mt-bench show`, report, publish and the rest work on inspect runs. The records come from what
the task's scorer stored in each score's metadata (answers, judge prompts, raw judgments), the
exact texts the judge saw. Re-importing replaces this model's rows; other models' rows are kept.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mt_bench_task.core.data import answer_file, judgment_file, judgment_lines
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import QuestionId, question_key
from mt_bench_task.core.jsonl import write_lines_atomic
from mt_bench_task.core.types import Answer, Choice, PairJudgment, SingleJudgment

TASK_KEY = "mt_bench_task"  # the task's metadata key: marks a log as one of ours


@dataclass(frozen=True)
class ImportSummary:
    model_id: str
    judge: str
    mode: str  # "single" | "pairwise-baseline"
    answers: int
    judgments: int
    skipped: int  # samples without a score of this task (errors, cancelled runs)
    answer_file: Path
    judgment_file: Path


def _read_log(path: Path) -> Any:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        from inspect_ai.log import read_eval_log
    except ImportError:
        raise DataError(f"{path}: reading inspect logs needs the inspect extra: "
                        "pip install 'mt_bench_task[inspect]'") from None
    try:
        log = read_eval_log(str(path), resolve_attachments=True, exclude_fields={"events"})
    except Exception as e:  # noqa: BLE001  any unreadable file is a user input error, not a crash
        first = str(e).splitlines()[0][:160] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable inspect log ({first})") from None
    if TASK_KEY not in (log.eval.metadata or {}):
        raise DataError(f"{path}: not a log of the mt_bench task (task {log.eval.task!r})")
    epochs = log.eval.config.epochs or 1
    if epochs != 1:  # FastChat's files hold one answer and one judgment per question and turn
        raise DataError(f"{path}: a run with {epochs} epochs; FastChat's files hold one answer per "
                        f"question (run inspect eval with --epochs 1)")
    return log


def _our_score(sample: Any) -> Any:
    for s in (sample.scores or {}).values():
        if isinstance(s.metadata, dict) and {"turns", "answers", "judge", "mode"} <= set(
                s.metadata):
            return s
    return None


def _tstamp(when: Any, fallback: float) -> float:
    """An ISO time of the log as FastChat's float tstamp (the log's own times: reproducible)."""
    try:
        return datetime.fromisoformat(str(when)).timestamp() if when else fallback
    except ValueError:
        return fallback


def default_model_id(model: str) -> str:
    """The last part of inspect's model name, as FastChat names answer files:
    "openai/gpt-4o" -> "gpt-4o", "openai-api/vllm/my-model" -> "my-model",
    "hf/HuggingFaceTB/SmolLM2-135M-Instruct" -> "SmolLM2-135M-Instruct"."""
    return model.rstrip("/").rsplit("/", 1)[-1]


def import_inspect_log(log_path: Path | str, data_dir: Path | str,
                       model_id: str | None = None) -> ImportSummary:
    """Write the answer and judgment files of one inspect log; nothing is written on error."""
    path, data_dir = Path(log_path), Path(data_dir)
    log = _read_log(path)
    model_id = model_id or default_model_id(log.eval.model)
    created = _tstamp(log.eval.created, 0.0)
    scored = [(s, _our_score(s)) for s in (log.samples or [])]
    usable = [(s, sc) for s, sc in scored if sc is not None]
    if not usable:
        raise DataError(f"{path}: no scored mt_bench samples to import "
                        f"(log status {log.status!r}, {len(scored)} samples)")
    modes = {sc.metadata["mode"] for _, sc in usable}
    judges = {sc.metadata["judge"] for _, sc in usable}
    if len(modes) != 1 or len(judges) != 1:
        raise DataError(f"{path}: mixed judge modes {sorted(modes)} or judges {sorted(judges)}")
    mode, judge = modes.pop(), judges.pop()
    answers, judgments = [], []
    # FastChat's answer-file order: by id; string ids keep the log's (the dataset's) order
    for sample, score in sorted(usable, key=lambda x: _order(x[0].id)):
        qid, meta, ts = _id(sample.id), score.metadata, _tstamp(sample.completed_at, created)
        answers.append(Answer(qid, str(sample.uuid or f"{model_id}-{qid}"), model_id,
                              [Choice(0, list(meta["answers"]))], ts).to_json())
        # prompts other than FastChat's: marked as `mt-bench judge --judge-file` marks them
        extra: dict[str, Any] = ({} if meta.get("fastchat_prompts", True)
                                 else {"fastchat_prompts": False})
        if meta.get("references") is not None:  # `-T references=...`, as `mt-bench judge` marks it
            extra["references"] = meta["references"]
        for t in meta["turns"]:
            judge_id = [judge, t["prompt_name"]]
            if mode == "single":
                rec: Any = SingleJudgment(qid, model_id, judge_id, t["user_prompt"], t["judgment"],
                                          t["score"], t["turn"], ts, dict(extra))
            else:
                rec = PairJudgment(qid, model_id, meta["baseline_model"], t["g1_winner"],
                                   t["g2_winner"], judge_id, t["g1_user_prompt"], t["g1_judgment"],
                                   t["g2_user_prompt"], t["g2_judgment"], t["turn"], ts,
                                   dict(extra))
            judgments.append((t["turn"], rec.to_json()))
    file_mode = "single" if mode == "single" else "pairwise-baseline"
    out_answers = answer_file(data_dir, model_id)
    out_judgments = judgment_file(data_dir, judge, file_mode)
    lines = [line for _, line in sorted(judgments, key=lambda x: x[0])]  # turn 1 block, then 2
    others = _other_models(out_judgments, file_mode, model_id)  # may refuse: before anything is written
    write_lines_atomic(out_answers, answers)
    write_lines_atomic(out_judgments, others + lines)
    return ImportSummary(model_id, judge, file_mode, len(answers), len(lines),
                         len(scored) - len(usable), out_answers, out_judgments)


def _id(sample_id: Any) -> QuestionId:
    """The sample's question id as the bench writes it (inspect keeps int and str ids)."""
    return sample_id if isinstance(sample_id, (int, str)) else str(sample_id)


def _order(sample_id: Any) -> tuple[int, int]:
    key = question_key(_id(sample_id))
    return (0, key) if isinstance(key, int) else (1, 0)  # stable sort: strings keep their order


def _other_models(path: Path, mode: str, model_id: str) -> list[str]:
    """Lines of an existing judgment file that are not this model's (raw bytes kept); a malformed
    line is a DataError naming file:line, before anything is written."""
    if not path.is_file():
        return []
    return [line for line, r in judgment_lines(path, mode)
            if (r.model if isinstance(r, SingleJudgment) else r.model_1) != model_id]
