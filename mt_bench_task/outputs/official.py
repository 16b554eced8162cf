"""The published MT-bench leaderboard inside the package: official GPT-4 grades and placement.

Dataset: `data/official_grades/gpt-4_single_scores.jsonl` (34 models x 80 questions x 2 turns,
the GPT-4 single grades behind the published leaderboard; see its SOURCE.md) and the official
answers of 6 of those models in `data/official_answers/`.
Paper: Zheng et al., "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena", arXiv:2306.05685.
Scored: nothing is judged here. The official models' averages are FastChat's show_result rule
(score -1 rows dropped, per-turn means, Average pooled over rows) applied to the official rows,
by the same `scoring.summarize_single` as the user's models; every official entry is marked
`"official": true` and the user's `"official": false`, so one is never read as the other.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_bench_task.core.bench import DEFAULT_BENCH, Bench, load_bench, official_grades_file
from mt_bench_task.core.data import judgment_file, read_single_judgments
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.judge_spec import DEFAULT_JUDGE, NOT_COMPARABLE, JudgeIdentity, identity_of_records
from mt_bench_task.core.results import Results
from mt_bench_task.core.types import Judgment, SingleJudgment
from mt_bench_task.core.workspace import Workspace, workspace_at
from mt_bench_task.outputs.calibration_stats import citation, load_stats

OFFICIAL_JUDGE = DEFAULT_JUDGE  # the published leaderboard's judge (gpt-4-0613, FastChat #2284)
REFERENCE_MODELS = ("gpt-4", "gpt-3.5-turbo", "claude-v1", "vicuna-13b-v1.3", "alpaca-13b",
                    "llama-13b")  # the official models whose answers ship (calibration set)
DEFAULT_PLOT_MODELS = ("gpt-4", "gpt-3.5-turbo", "vicuna-13b-v1.3")
OFFICIAL_SUFFIX = " (official)"  # only when a user's model has an official model's name


def load_official_grades() -> list[SingleJudgment]:
    """The official records (question_id, model, judge, score, turn), in the official file's order."""
    return read_single_judgments(official_grades_file())


def official_models() -> list[str]:
    return sorted({r.model for r in load_official_grades()})


# ---- the judge label with the calibration figures (the rule and wording: `core.judge_spec`) ----
def judge_label(who: JudgeIdentity, calibration: str | None = None) -> str | None:
    """`judge_spec`'s label ("judged by gpt-4o: not comparable with published MT-bench"), with
    `calibration` next to it when given; None for a comparable judge without calibration."""
    if calibration is None:
        return who.label
    return f"{who.label or f'judged by {who.judge}'}; {calibration}"


def calibration_label(data_dir: Path | None, records: Iterable[Judgment],
                      judge_model: str) -> tuple[str, dict[str, Any]] | None:
    """(judge label with the calibration figures, saved statistics) when `mt-bench calibrate`
    saved a calibration for the judge of these records in DATA_DIR; else None."""
    who = identity_of_records(records, judge_model)
    stats = load_stats(data_dir, who.judge)
    note = citation(stats)
    if stats is None or note is None:  # none saved, or nothing to cite (no pairs)
        return None
    return judge_label(who, note) or note, stats  # with a note the label is never None


# ---- placement ----
def mt_bench() -> Bench:
    """The packaged MT-bench (questions, categories, references, FastChat's prompts): the bench
    of the official grades and answers, whatever bench or data dir the user's run is on."""
    return load_bench(DEFAULT_BENCH)


def check_mt_bench(bench: Bench) -> None:
    """The official grades are for MT-bench's 80 questions: another bench, or a data dir with
    other questions, cannot be placed among them."""
    if bench.name != DEFAULT_BENCH:
        raise ParameterError(f"bench {bench.name!r}: the leaderboard placement compares scores on "
                             f"MT-bench's 80 questions only (bench_name mt_bench)", "bench_name")
    mine, packaged = Path(bench.sources["questions"]), Path(mt_bench().sources["questions"])
    if mine != packaged and mine.read_bytes() != packaged.read_bytes():
        raise DataError(f"{mine}: not MT-bench's questions; the leaderboard placement compares "
                        f"scores on MT-bench's 80 questions only")


def leaderboard(user: Results, seed: int = 0) -> dict[str, Any]:
    """`user`'s `show --json` object with the 34 official models added.

    Same shape; `models` is ranked by average (best first); each entry has `official`. The
    user's entries (CIs included) are exactly those of `user`; the official ones come from a
    separate `summarize_single` call, so adding them changes none of the user's numbers.
    """
    from mt_bench_task.core.scoring import summarize_single

    if not user.single:
        raise ParameterError("the leaderboard placement needs single-mode scores (mode single)", "mode")
    official = summarize_single(load_official_grades(), mt_bench().category_of, None, seed).to_json()
    mine = user.to_json()
    entries: list[tuple[str, dict[str, Any]]] = [
        (name, {**m, "official": False}) for name, m in mine["models"].items()]
    for name, m in official["models"].items():
        key = name + OFFICIAL_SUFFIX if name in mine["models"] else name
        entries.append((key, {**m, "official": True}))
    entries.sort(key=lambda kv: (-kv[1]["average"], kv[1]["official"], kv[0]))
    return {**mine, "models": dict(entries),
            "official_source": {"judge": OFFICIAL_JUDGE, "models": len(official["models"]),
                                "rows": official["rows"], "file": "mt_bench_task/data/official_"
                                "grades/gpt-4_single_scores.jsonl (see SOURCE.md)"}}


def leaderboard_text(board: dict[str, Any], judge: str, labels: list[str]) -> str:
    """The placement table: rank, model, average, turns, the user's CIs, and who graded it."""
    users = sum(not m["official"] for m in board["models"].values())
    lines = [f"NOTE: {label}" for label in labels]
    lines.append(f"########## Leaderboard placement: {users} of your model(s) among the "
                 f"{board['official_source']['models']} published MT-bench models ##########")
    lines.append(f"{'rank':>4s}  {'model':40s} {'average':>7s} {'turn 1':>7s} {'turn 2':>7s}  "
                 f"{'95% CI (yours)':17s} graded by")
    for rank, (name, m) in enumerate(board["models"].items(), 1):
        ci = "" if m["official"] else f"[{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]"
        eq = m.get("gpt4_equivalent")  # a calibrated judge's grades on GPT-4's scale
        who = ("official: published GPT-4 grades" if m["official"]
               else f"YOURS: judge {judge}" + (f"; GPT-4-equivalent {eq['average']:.2f} "
                                               f"[{eq['ci95'][0]:.2f}, {eq['ci95'][1]:.2f}]"
                                               if eq else ""))
        lines.append(f"{rank:4d}  {name:40s} {_f(m['average'])} {_f(m['turn_1'])} "
                     f"{_f(m['turn_2'])}  {ci:17s} {who}")
    lines.append("Official rows are the published GPT-4 grades, not scores of your runs; "
                 "averages by FastChat's show_result rule (score -1 rows dropped).")
    return "\n".join(lines)


def _f(x: float | None) -> str:
    return f"{'-':>7s}" if x is None else f"{x:7.3f}"


def plot_models(board: dict[str, Any], reference_models: list[str] | None,
                categories: tuple[str, ...] = ()) -> Results:
    """The radar's input: the user's models plus the chosen official ones (renamed to say so)."""
    chosen = list(reference_models) if reference_models else list(DEFAULT_PLOT_MODELS)
    official = {n.removesuffix(OFFICIAL_SUFFIX): n for n, m in board["models"].items() if m["official"]}
    unknown = [m for m in chosen if m not in official]
    if unknown:
        raise ParameterError(f"reference_models: {', '.join(unknown)} not among the official models "
                             f"({', '.join(sorted(official))})", "reference_models")
    models = {n: m for n, m in board["models"].items() if not m["official"]}
    models.update({f"{name} [official GPT-4]": board["models"][official[name]] for name in chosen})
    return Results.from_json({**board, "models": models}, categories, "leaderboard")


# ---- `mt-bench show --leaderboard` (text returned to the CLI, never printed here) ----
@dataclass
class LeaderboardView:
    results: dict[str, Any]
    stdout: str
    stderr: list[str] = field(default_factory=list)


def show_leaderboard(data_dir: Path, input_file: str | None, judge_model: str, mode: str,
                     model_list: list[str] | None, as_json: bool = False, plot: str | None = None,
                     reference_models: list[str] | None = None, seed: int = 0,
                     workspace: Workspace | None = None) -> LeaderboardView:
    """The user's single-mode scores placed among the official models (JSON or text); the
    workspace's bench (default: DATA_DIR's, `workspace_at`) must be MT-bench."""
    from mt_bench_task.core import scoring

    if mode != "single":
        raise ParameterError("leaderboard needs single-mode judgments (mode single)", "leaderboard", "mode")
    bench = workspace_at(data_dir, workspace).bench
    check_mt_bench(bench)
    path = Path(input_file) if input_file else judgment_file(data_dir, judge_model, mode)
    records = read_single_judgments(path)
    user = scoring.results_from_records(records, mode, model_list, None, bench.category_of, seed,
                                        source=str(path))
    who = identity_of_records(records, judge_model)
    stats = load_stats(data_dir, who.judge)
    from mt_bench_task.outputs.extra_stats import attach

    user = attach(user, records, bench.category_of, stats, seed=seed)  # GPT-4-equivalent, if any
    label = judge_label(who, citation(stats))
    labels = [label] if label else []
    if not who.comparable:
        labels.append(f"your models were graded by {who.judge}, the official ones by GPT-4: "
                      "the placement is indicative only")
    board = leaderboard(user, seed)  # "judge" and "comparable" come with `user` (judges' rule)
    if stats is not None:
        from mt_bench_task.outputs.extra_stats import public

        board["calibration"] = public(stats)  # the map without the pairs it is refitted on
    view = LeaderboardView(board, "")
    if as_json:
        import json

        view.stdout = json.dumps(board)
        view.stderr += [f"NOTE: {label}" for label in labels]
    else:
        view.stdout = f"Input file: {path}\n" + leaderboard_text(board, who.judge, labels)
    if plot:
        from mt_bench_task.outputs.plot import radar_plot

        subset = plot_models(board, reference_models, bench.categories)
        dashed = {n for n in subset.models if n.endswith("[official GPT-4]")}
        out = radar_plot(subset, Path(plot), title_note=None if who.comparable else
                         f"your judge {who.judge}: {NOT_COMPARABLE}",
                         bench_name=bench.name, dashed=dashed)
        view.stderr.append(f"radar plot: {out}")
    return view
