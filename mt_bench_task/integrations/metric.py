"""The library side of the `mt_bench_judge` evaluate metric: inputs -> FastChat records -> scores.

Name: mt_bench_judge (configs `single` and `pairwise`). Dataset: the packaged MT-bench questions
(`load_dataset(str(dataset_path()), "question", split="train")` rows are the references), or any
bench's (`bench="vicuna_bench"` or a bench folder: its references and judge prompts are used).
Paper: arXiv:2306.05685. Scored: GPT-4-style 1-10 ratings per turn (single) or win/loss/tie
against a baseline's answers (pairwise), judged by `judging.judge_answers` and summarised by
`scoring.results_from_records`, so every number equals `mt-bench show --json` on the same judgments.
Nothing here imports evaluate; `metrics/mt_bench_judge/mt_bench_judge.py` is the evaluate script.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mt_bench_task.clients import make_client
from mt_bench_task.core import data, scoring
from mt_bench_task.core.bench import Bench, with_references
from mt_bench_task.core.chat import ChatClient
from mt_bench_task.core.ids import QuestionId, question_key
from mt_bench_task.core.judge_spec import DEFAULT_BASELINE, DEFAULT_JUDGE, JudgeSpec, identity_of_records, judge_spec
from mt_bench_task.core.prompts import Mode
from mt_bench_task.core.types import Answer, Choice, PairJudgment, Question, SingleJudgment
from mt_bench_task.core.workspace import open_bench
from mt_bench_task.judging import run as judging
from mt_bench_task.judging.call import run_sync
from mt_bench_task.outputs import extra_stats

CONFIG_MODES: dict[str, Mode] = {"default": "single", "single": "single",
                                 "pairwise": "pairwise-baseline"}
RATE_KEYS = ("win", "loss", "tie", "win_rate", "loss_rate", "win_rate_adjusted")


def mode_for(config_name: str) -> Mode:
    """The judging mode of an evaluate config name ("default" is single)."""
    if config_name not in CONFIG_MODES:
        raise ValueError(f"unknown config {config_name!r} for mt_bench_judge: "
                         f"use 'single' or 'pairwise'")
    return CONFIG_MODES[config_name]


def features() -> Any:
    """Input features (both configs): turn texts per question, and the question record."""
    import datasets  # type: ignore[import-untyped]

    return datasets.Features({
        "predictions": datasets.List(datasets.Value("string")),
        # Json: question records with or without "reference" (raw JSONL rows lack it, dataset
        # rows have it); `to_questions` validates them
        "references": datasets.Json(),
    })


@dataclass
class JudgeSettings:
    """Load-time judge settings: `evaluate.load("mt_bench_judge", judge_model=..., ...)`."""

    judge_model: str = DEFAULT_JUDGE
    base_url: str | None = None
    api_key: str | None = None  # None: $OPENAI_API_KEY
    parallel: int = 8
    judge_file: str | None = None
    client: ChatClient | None = None  # a ready judge (tests, custom backends); overrides the above
    judge_repeats: int = 1  # each match judged K times (records carry "repeat")
    bench: str | Path | Bench = "mt_bench"  # a packaged bench name, a bench folder, or a Bench
    references: str | None = None  # "inline" or a FastChat reference file (`bench.with_references`)
    # the judge's calibration (`calibrate()`'s object or its saved JSON file) for GPT-4-equivalent
    # scores; None: the packaged one of the judge, if any
    calibration: Mapping[str, Any] | str | None = None

    def __repr__(self) -> str:  # never the key, nor the base URL's credentials
        from mt_bench_task.core.redact import redact_url

        url = redact_url(self.base_url) if self.base_url else None
        return (f"JudgeSettings(judge_model={self.judge_model!r}, base_url={url!r}, "
                f"parallel={self.parallel}, judge_repeats={self.judge_repeats}, "
                f"bench={getattr(self.bench, 'name', self.bench)!r}, "
                f"references={self.references!r})")

    @property
    def spec(self) -> JudgeSpec:
        return judge_spec(self.judge_model)

    def resolve_bench(self) -> Bench:
        """The Bench value (`workspace.open_bench`'s rule), with the `references` choice applied."""
        return with_references(open_bench(self.bench), self.references)

    @property
    def local(self) -> bool:
        return self.client is None and self.spec.local

    @property
    def judge_name(self) -> str:
        """The judge name in records: the embedded judge by its model, a path by its dir name."""
        return self.spec.display_name

    def make_client(self) -> ChatClient:
        """The given client; a cached local judge (loads once); or a fresh API client per call,
        because an `AsyncOpenAI` client cannot outlive the event loop of one `compute()`."""
        if self.client is not None:
            return self.client
        client = make_client(self.spec, base_url=self.base_url, api_key=self.api_key)
        if self.spec.local:
            self.client = client
        return client

    def check_reachable(self) -> None:
        """Fail in seconds on a wrong base_url or key, not after every request's retries."""
        if self.client is not None or self.local:
            return
        probe = self.make_client()

        async def go() -> None:
            try:
                await probe.check_reachable()
            finally:
                await probe.close()

        run_sync(go)


# ---- inputs -> FastChat records ----
def to_questions(references: Sequence[Mapping[str, Any]]) -> list[Question]:
    """Question records from the references (rows of the packaged dataset's "question" config)."""
    questions = []
    for i, ref in enumerate(references):
        if not isinstance(ref, Mapping) or not {"question_id", "category", "turns"} <= set(ref):
            raise ValueError(f"references[{i}] must be a question record with question_id, "
                             f"category and turns (a row of the 'question' config), "
                             f"got {ref!r:.80}")
        qid = ref["question_id"]
        if isinstance(qid, bool) or not isinstance(qid, (int, str)) or not str(qid).strip():
            raise ValueError(f"references[{i}]['question_id'] must be an integer or a string, "
                             f"got {qid!r:.40}")
        questions.append(Question(qid, str(ref["category"]),
                                  _turns(ref["turns"], f"references[{i}]['turns']"),
                                  ref.get("reference")))
    data.check_unique_ids(questions, "references")
    return questions


def to_answers(predictions: Sequence[Any], questions: list[Question], model_id: str,
               what: str = "predictions", max_turn: int = 2) -> dict[QuestionId, Answer]:
    """One Answer per question; predictions[i] holds one text per turn of questions[i] (only
    the first with `max_turn` 1: judge prompts without a multi-turn prompt judge turn 1 only)."""
    if len(predictions) != len(questions):
        raise ValueError(f"{len(predictions)} {what} for {len(questions)} references")
    answers = {}
    for i, (turns, q) in enumerate(zip(predictions, questions)):
        turns = _turns(turns, f"{what}[{i}]")
        if not min(len(q.turns), max_turn) <= len(turns) <= len(q.turns):
            raise ValueError(f"{what}[{i}] has {len(turns)} turn(s) but question {q.question_id} "
                             f"has {len(q.turns)}")
        answers[q.key] = Answer(q.question_id, f"{model_id}-{q.question_id}", model_id,
                                        [Choice(0, turns)], 0.0)
    return answers


def baseline_answers(baseline_predictions: Sequence[Any] | Mapping[Any, Any] | None,
                     questions: list[Question], baseline_model: str,
                     official_dir: Path | None = None) -> dict[QuestionId, Answer]:
    """The baseline's answers: a list aligned with the references, a {question_id: turns} dict,
    or (None) the bench's official answers of `baseline_model` (MT-bench: gpt-3.5-turbo's)."""
    if baseline_predictions is None:
        if official_dir is None:
            raise ValueError("this bench has no packaged baseline answers: pass baseline_predictions")
        official = data.load_answers(official_dir, baseline_model, fallback_dir=official_dir)
        missing = [q.question_id for q in questions if q.key not in official]
        if missing:
            raise ValueError(f"no packaged {baseline_model} answers for question ids {missing[:5]}:"
                             f" pass baseline_predictions")
        return {q.key: official[q.key] for q in questions}
    if isinstance(baseline_predictions, Mapping):
        by_key = {question_key(k): v for k, v in baseline_predictions.items()}
        missing = [q.question_id for q in questions if q.key not in by_key]
        if missing:
            raise ValueError(f"baseline_predictions has no answer for question ids {missing[:5]}")
        baseline_predictions = [by_key[q.key] for q in questions]
    return to_answers(baseline_predictions, questions, baseline_model, "baseline_predictions")


def _turns(value: Any, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ValueError(f"{what} must be a list of turn texts, got {type(value).__name__}")
    if not all(isinstance(t, str) for t in value):
        raise ValueError(f"{what} must hold strings only")
    return list(value)


# ---- compute ----
def compute(predictions: Sequence[Any], references: Sequence[Mapping[str, Any]], *,
            mode: Mode = "single", judge: JudgeSettings | None = None, model_id: str = "model",
            baseline_predictions: Sequence[Any] | Mapping[Any, Any] | None = None,
            baseline_model: str = DEFAULT_BASELINE,
            return_judgments: bool = False) -> dict[str, Any]:
    """Judge `predictions` (answers of `model_id`) and score them like `mt-bench show --json`."""
    judge = judge or JudgeSettings()
    bench = judge.resolve_bench()
    questions = to_questions(references)
    answers: dict[str, dict[QuestionId, Answer]] = {
        model_id: to_answers(predictions, questions, model_id,
                             max_turn=2 if bench.judges_turn_2(mode) else 1)}
    if mode != "single":
        if model_id == baseline_model:
            raise ValueError(f"model_id {model_id!r} must differ from baseline_model")
        answers[baseline_model] = baseline_answers(baseline_predictions, questions, baseline_model,
                                                   bench.official_answers)
    if judge.judge_repeats < 1:
        raise ValueError(f"judge_repeats must be at least 1, got {judge.judge_repeats}")
    judge.check_reachable()
    records = judging.judge_answers(questions, answers, judge.make_client(), judge.spec,
                                    mode, baseline_model if mode != "single" else None,
                                    judge.parallel, Path(judge.judge_file) if judge.judge_file else None,
                                    judge_repeats=judge.judge_repeats, bench=bench)
    categories = {q.key: q.category for q in questions}
    if mode == "single":
        result = single_result(scoring.only(SingleJudgment, records), model_id, categories)
        result.update(extra_stats.metric_equivalent(scoring.only(SingleJudgment, records),
                                                    model_id, categories, judge.calibration,
                                                    judge.judge_name))
    else:
        result = pairwise_result(scoring.only(PairJudgment, records), model_id, baseline_model,
                                 categories)
        result.update(extra_stats.metric_length(scoring.only(PairJudgment, records), model_id,
                                                baseline_model, answers))
    # the label from the records, by judges' one rule, as show, report, run and publish say it
    who = identity_of_records(records, judge.judge_name)
    result.update(judge=who.judge, comparable=who.comparable, label=who.label)
    if return_judgments:  # as JSON-able dicts, the lines of FastChat's judgment file
        result["judgments"] = [r.to_dict() for r in records]
    return result


def single_result(records: Sequence[SingleJudgment], model_id: str,
                  categories: dict[QuestionId, str]) -> dict[str, Any]:
    """score (FastChat's Average), per-turn and per-category means, counts, bootstrap CI."""
    res = scoring.results_from_records(records, "single", None, None, categories)
    if model_id not in res.models:  # every turn failed: no score
        return {"score": None, "turn_1": None, "turn_2": None, "categories": {}, "n": 0,
                "n_failed": res.rows_dropped, "ci95": None, "judge_repeats": res.judge_repeats,
                "judge_sd": None}
    m = res.score(model_id)
    return {"score": m.average, "turn_1": m.turn_1, "turn_2": m.turn_2,
            "categories": dict(m.categories), "n": m.n_turn_1 + m.n_turn_2,
            "n_failed": res.rows_dropped, "ci95": list(m.ci95), "judge_repeats": res.judge_repeats,
            "judge_sd": m.judge_sd}


def pairwise_result(records: Sequence[PairJudgment], model_id: str, baseline_model: str,
                    categories: dict[QuestionId, str]) -> dict[str, Any]:
    """FastChat's win/loss/tie rates against the baseline, overall, per turn and per category."""
    def rates(subset: Sequence[PairJudgment]) -> dict[str, Any]:
        res = scoring.results_from_records(subset, "pairwise-baseline", None, baseline_model)
        m = asdict(res.rates(model_id)) if model_id in res.models else {}
        return {**{k: m.get(k) for k in RATE_KEYS}, "consistency": res.consistency,
                "n": res.rows - res.rows_dropped, "n_failed": res.rows_dropped}

    result = rates(records)
    for turn in (1, 2):
        result[f"turn_{turn}"] = rates([r for r in records if r.turn == turn])
    cats = list(dict.fromkeys(categories[question_key(r.question_id)] for r in records))
    result["categories"] = {c: rates([r for r in records
                                      if categories[question_key(r.question_id)] == c])
                            for c in cats}
    return result


def calibrate(judge: JudgeSettings | None = None,
              models: Sequence[str] | None = None) -> dict[str, Any]:
    """The judge's calibration figures (`mt-bench calibrate --json`'s object): it grades the
    official answers of the reference models (default all 6: 960 calls) with FastChat's single
    prompts, compared with the official GPT-4 grades by `calibration_stats.calibration_stats`.
    Always on MT-bench (the official grades' bench), whatever `judge.bench` says."""
    from mt_bench_task.outputs import calibration
    from mt_bench_task.outputs.official import mt_bench

    judge = judge or JudgeSettings()
    names, answers = calibration.reference_set(models)
    judge.check_reachable()
    bench = with_references(mt_bench(), judge.references)
    records = judging.judge_answers(bench.select(), answers, judge.make_client(), judge.spec,
                                    "single", None, judge.parallel,
                                    Path(judge.judge_file) if judge.judge_file else None,
                                    judge_repeats=judge.judge_repeats, bench=bench)
    return calibration.calibrate_records(scoring.only(SingleJudgment, records), judge.judge_name,
                                         names)
