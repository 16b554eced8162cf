"""Stage 5, publish: MT-bench scores into a Hub model card, and the packaged dataset onto the Hub.

The card's `model-index` is built with huggingface_hub's ModelCardData/EvalResult, merged into the
card already on the Hub (other metadata, results and body text kept), and pushed with the radar
plot in ONE commit, so a failure leaves nothing half-written. The human-readable section lives
between `SECTION_START` and `SECTION_END`; a re-publish replaces it in place.
"""
from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mt_bench_task.core.bench import DEFAULT_BENCH, Bench, dataset_path, load_bench
from mt_bench_task.core.data import answer_notes
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.judge_spec import DEFAULT_BASELINE, DEFAULT_JUDGE, NOT_COMPARABLE
from mt_bench_task.core.results import PairScore, Results, SingleScore
from mt_bench_task.core.served import mixed_note
from mt_bench_task.core.workspace import Workspace, workspace_at
from mt_bench_task.outputs import extra_stats
from mt_bench_task.outputs.hub import get_token, hub_error, one_line, read_card

SECTION_START = "<!-- mt-bench:start -->"
SECTION_END = "<!-- mt-bench:end -->"
RADAR_FILE = "mt_bench_radar.png"


@dataclass(frozen=True)
class PublishResult:
    card: str  # the full README.md that was (or, in a dry run, would be) pushed
    commit_url: str | None = None
    pr_url: str | None = None
    files: tuple[str, ...] = ("README.md",)
    notes: list[str] = field(default_factory=list)  # things the user should know (stderr)


def publish_results(repo_id: str | None, data_dir: Path, results_file: str | Path | None = None,
                    judge_model: str = DEFAULT_JUDGE, model_id: str | None = None,
                    create_pr: bool = False, dry_run: bool = False,
                    revision: str | None = None, workspace: Workspace | None = None) -> PublishResult:
    """Write one model's scores on the workspace's bench (default: DATA_DIR's, `workspace_at`)
    into the model card of `repo_id`; the card names the bench's dataset id, revision and
    categories only.

    `results_file` is a judgment JSONL (default DATA_DIR/model_judgment/<judge>_single.jsonl) or
    the JSON object of `mt-bench show --json`. Win rates come from the sibling `_pair.jsonl`.
    A dry run reads the current card (if reachable) and pushes nothing; a dry run without
    `repo_id` previews the card a new repo named after the model would get (no Hub call).
    """
    if repo_id is None and not dry_run:
        raise ParameterError("repo_id is needed to publish (a dry run can do without)", "repo_id")
    token = get_token()
    if not dry_run and not token:  # fail before any HTTP: nothing can be half-written
        raise DataError("no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                        "(publishing needs a token with write access)")
    bench = workspace_at(data_dir, workspace).bench
    single, pair_file = _load_single(Path(data_dir), results_file, judge_model, bench)
    model = _pick_model(single, model_id)
    pairwise = _load_pairwise(pair_file, model) if pair_file else None
    judge, comparable = single.judge, single.comparable
    served = list(single.served_by)  # the judge's served model(s)
    notes: list[str] = [n for n in [mixed_note(served)] if n]
    if single.label:
        notes.append(f"{single.label}: the card says so")

    from huggingface_hub import ModelCard

    text: str | None = None
    if repo_id is None:
        repo_id = model
        read_note: str | None = f"no repo_id: the card a new repo {model!r} would get"
    else:
        text, read_note = read_card(repo_id, revision, token, dry_run)
    notes += [read_note] if read_note else []
    try:
        card = ModelCard(text if text is not None else _new_card(repo_id))
    except ValueError as e:
        raise DataError(f"{repo_id}: the current README metadata cannot be parsed "
                        f"({one_line(str(e), token)}); fix it before publishing") from e

    png, plot_note = _render_radar(single, model, comparable, bench)
    notes += [plot_note] if plot_note else []
    references = single.references  # `--references`: named in the card
    _merge_results(card, repo_id, _eval_results(single.score(model), pairwise, judge, bench,
                                                references), bench)
    from mt_bench_task.outputs.calibration_stats import cite

    calibration = cite(Path(data_dir), judge)  # `mt-bench calibrate`'s figures for this judge
    answers = answer_notes(Path(data_dir), [model], bench.official_answers)  # thoughts, cuts
    card.text = _with_section(card.text, _section(model, single, pairwise, judge, comparable,
                                                  png is not None, bench, calibration, served,
                                                  references, answers[0] if answers else None),
                              *_markers(bench))
    content = str(card)
    files = ("README.md", _radar_file(bench)) if png is not None else ("README.md",)
    if dry_run:
        return PublishResult(card=content, files=files, notes=notes)

    from huggingface_hub import CommitOperationAdd, HfApi

    ops = [CommitOperationAdd("README.md", content.encode())]
    if png is not None:
        ops.append(CommitOperationAdd(_radar_file(bench), png))
    try:
        info = HfApi(token=token).create_commit(
            repo_id, ops, commit_message=f"Add {_label(bench)} results ({model}, judge {judge})",
            revision=revision, create_pr=create_pr)
    except Exception as e:
        raise hub_error(e, repo_id, revision, token) from e
    return PublishResult(card=content, commit_url=info.commit_url, pr_url=info.pr_url,
                         files=files, notes=notes)


def push_dataset(repo_id: str, private: bool = False, revision: str | None = None,
                 bench: str = DEFAULT_BENCH) -> str:
    """Upload the packaged dataset folder as is (README with `configs:` + data/*.jsonl), so
    `load_dataset(repo_id, "question")` reads back FastChat's files byte for byte. Returns the
    commit URL."""
    token = get_token()
    if not token:
        raise DataError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, repo_type="dataset",
                                 folder_path=dataset_path(bench),
                                 allow_patterns=["README.md", "data/*.jsonl"], revision=revision,
                                 commit_message=f"Upload {bench} ({load_bench(bench).dataset_revision})")
    except Exception as e:
        raise hub_error(e, repo_id, revision, token) from e
    return str(info.commit_url)


# ---- results ----
def _load_single(data_dir: Path, results_file: str | Path | None, judge_model: str,
                 bench: Bench) -> tuple[Results, Path | None]:
    from mt_bench_task.core.data import judgment_file
    from mt_bench_task.core.scoring import results_from_file

    path = Path(results_file) if results_file else judgment_file(data_dir, judge_model, "single")
    if not path.is_file():
        raise ParameterError(f"{path}: file not found (judge first, or give results_file)", "results_file")
    if path.suffix == ".json":  # the object `mt-bench show --json` prints
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(results, dict) or results.get("mode") != "single" or "models" not in results:
            raise DataError(f"{path}: expected the single-mode object of `mt-bench show --json`")
        return Results.from_json(results, bench.categories, str(path)), None
    results = results_from_file(path, mode="single",  # with "judge" and "comparable"
                                categories=bench.category_of)
    results = extra_stats.attach_for(results, data_dir, bench, path)
    pair = path.with_name(path.name.replace("_single.jsonl", "_pair.jsonl"))
    return results, pair if pair != path and pair.is_file() else None


def _load_pairwise(path: Path, model: str) -> tuple[PairScore, str] | None:
    """(rates, opponent): vs FastChat's baseline when the file has them, else vs all ("all")."""
    from mt_bench_task.core.scoring import results_from_file

    res = results_from_file(path, mode="pairwise-baseline", baseline_model=DEFAULT_BASELINE)
    if model in res.models and model != DEFAULT_BASELINE:
        row = res.rates(model)
        if row.win + row.loss + row.tie > 0:
            return row, DEFAULT_BASELINE
    res = results_from_file(path, mode="pairwise-all")
    return (res.rates(model), "all") if model in res.models else None


def _pick_model(results: Results, model_id: str | None) -> str:
    known = sorted(results.models)
    if model_id is not None:
        if model_id not in known:
            raise DataError(f"model {model_id!r} has no scores; known models: {', '.join(known) or 'none'}")
        return model_id
    if not known:
        raise DataError("no model has scores (no valid judgment records)")
    if len(known) != 1:
        raise DataError(f"{len(known)} models have scores ({', '.join(known) or 'none'}): "
                        "choose one with --model-id")
    return known[0]


def _eval_results(scores: SingleScore, pairwise: tuple[PairScore, str] | None, judge: str,
                  bench: Bench, references: str | None = None) -> list[Any]:
    """Flatten one model's scores into EvalResults; (metric_type, metric_config) is unique."""
    from huggingface_hub import EvalResult

    args = {"judge_model": judge, "judge_prompts": bench.judge_prompts_version}
    if references is not None:
        args["references"] = references
    name = _label(bench)
    rows: list[tuple[str, str, str | None, Any]] = [
        ("mt_bench_score", f"{name} score", None, scores.average),
        ("mt_bench_score", f"{name} turn 1", "turn_1", scores.turn_1),
        ("mt_bench_score", f"{name} turn 2", "turn_2", scores.turn_2)]
    rows += [("mt_bench_score", f"{name} {c}", c, v) for c, v in scores.categories.items()]
    if pairwise:
        rates, vs = pairwise
        rows += [("mt_bench_win_rate", f"{name} win rate vs {vs}", f"vs_{vs}", rates.win_rate),
                 ("mt_bench_win_rate_adjusted", f"{name} adjusted win rate vs {vs}", f"vs_{vs}",
                  rates.win_rate_adjusted)]
    return [EvalResult(task_type="text-generation", task_name="Text Generation",
                       dataset_type=bench.dataset_id, dataset_name=name, dataset_config="question",
                       dataset_split="train", dataset_revision=bench.dataset_revision,
                       metric_type=mtype, metric_name=metric, metric_config=config,
                       metric_value=round(float(value), 4), metric_args=dict(args))
            for mtype, metric, config, value in rows if value is not None]


def _label(bench: Bench) -> str:
    """The bench's display name in cards: MT-bench's own, else the bench name."""
    return "MT-bench" if bench.name == DEFAULT_BENCH else bench.name


def _radar_file(bench: Bench) -> str:
    return RADAR_FILE if bench.name == DEFAULT_BENCH else f"{bench.name}_radar.png"


def _markers(bench: Bench) -> tuple[str, str]:
    """Each bench has its own card section, so publishing one bench keeps the other's."""
    if bench.name == DEFAULT_BENCH:
        return SECTION_START, SECTION_END
    return f"<!-- mt-bench:{bench.name}:start -->", f"<!-- mt-bench:{bench.name}:end -->"


def _is_ours(result: Any, bench: Bench) -> bool:
    return result.dataset_type == bench.dataset_id and str(result.metric_type).startswith("mt_bench")


def _merge_results(card: Any, repo_id: str, new: list[Any], bench: Bench) -> None:
    """Replace our previous entries for this bench (any judge), keep every other result."""
    kept = [r for r in (card.data.eval_results or []) if not _is_ours(r, bench)]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or repo_id.split("/")[-1]


# ---- the human section ----
def _served(served: list[str] | None) -> str:
    return f" (served by {', '.join(f'`{m}`' for m in served)})" if served else ""


def _section(model: str, single: Results, pairwise: tuple[PairScore, str] | None, judge: str,
             comparable: bool, with_image: bool, bench: Bench,
             calibration: str | None = None, served: list[str] | None = None,
             references: str | None = None, answers: str | None = None) -> str:
    s = single.score(model)
    lo, hi = s.ci95
    ci = f" (95% CI {lo:.2f}-{hi:.2f})"
    name = _label(bench)
    where = (f"[{name}](https://huggingface.co/datasets/{bench.dataset_id})"
             if bench.dataset_id.startswith("mt_bench_task/") else f"`{name}`")
    lines = [_markers(bench)[0], f"## {name}", "",
             (f"Model `{model}`, judged by `{judge}`{_served(served)} with FastChat's judge prompts "
              f"(`{bench.judge_prompts_version}`) on {where} "
              f"(revision `{bench.dataset_revision}`), single-answer grading on a 1-10 scale."), ""]
    if mixed_note(served or []):
        lines += [f"> Note: {mixed_note(served or [])}.", ""]
    if references is not None:
        lines += [(f"Reference answers: `{references}` (chosen with `--references`; FastChat's "
                   f"judge uses the judge's reference_answer file)."), ""]
    if not comparable:  # judges' one wording, with the judge's name in code style
        lines += [f"> Judged by `{judge}`: these scores are **{NOT_COMPARABLE}** numbers.", ""]
    if calibration:  # `mt-bench calibrate`'s figures, next to the label
        lines += [f"> Judge `{judge}`: {calibration} (`mt-bench calibrate`).", ""]
    if answers:  # a thinking model, or answers the token limit cut: `mt-bench show` says the same
        lines += [f"Answers: {answers.split(': ', 1)[1]} (thoughts are never shown to the "
                  f"judge).", ""]
    beside, notes = extra_stats.card_lines(s, single)  # GPT-4-equivalent, length-controlled
    lines += ["| | score |", "| --- | ---: |", f"| **average** | **{s.average:.2f}**{ci} |", *beside]
    for label, value, n in (("turn 1", s.turn_1, s.n_turn_1), ("turn 2", s.turn_2, s.n_turn_2)):
        if value is not None:
            lines.append(f"| {label} (n={n}) | {value:.2f} |")
    lines += [f"| {c} | {v:.2f} |" for c, v in s.categories.items()]
    lines += ["", *notes] if notes else []
    if pairwise:
        p, opponent = pairwise
        vs = "the other models" if opponent == "all" else f"`{opponent}`"
        lines += ["", f"Pairwise vs {vs}:", "", "| win | loss | tie | win rate | adjusted win rate |",
                  "| ---: | ---: | ---: | ---: | ---: |",
                  (f"| {p.win} | {p.loss} | {p.tie} | "
                   f"{p.win_rate:.3f} | {p.win_rate_adjusted:.3f} |")]
    if with_image:
        lines += ["", f"![{name} scores per category]({_radar_file(bench)})"]
    lines += ["", "Published with `mt-bench publish` (mt_bench_task).", _markers(bench)[1]]
    return "\n".join(lines)


def _with_section(body: str, section: str, start: str = SECTION_START,
                  end: str = SECTION_END) -> str:
    """Replace the marked section in place (all copies collapse into one), or append it."""
    if body.count(start) != body.count(end):
        raise DataError(f"the README has unbalanced {start} / {end} markers; "
                        "fix the card by hand before publishing")
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if not pattern.search(body):
        return body.rstrip("\n") + "\n\n" + section + "\n"
    first = pattern.search(body)
    assert first is not None
    head, tail = body[:first.start()], pattern.sub("", body[first.end():])
    return head + section + tail


def _render_radar(single: Results, model: str, comparable: bool,
                  bench: Bench) -> tuple[bytes | None, str | None]:
    try:
        from mt_bench_task.outputs.plot import radar_plot
    except ImportError as e:  # the plot module or matplotlib is missing: publish the numbers only
        return None, f"radar plot skipped ({e}); the card has the table only"
    with tempfile.TemporaryDirectory() as tmp:
        out = radar_plot(single.only([model]), Path(tmp) / RADAR_FILE,
                         title_note=None if comparable else NOT_COMPARABLE, bench_name=bench.name)
        return Path(out).read_bytes(), None


def _new_card(repo_id: str) -> str:
    # a metadata block is needed, or ModelCard logs "metadata block was not found"
    return f"---\ntags:\n- mt-bench\n---\n\n# {repo_id.split('/')[-1]}\n"
