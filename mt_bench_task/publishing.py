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

from .data import (
    CATEGORIES,
    DATASET_ID,
    DATASET_REVISION,
    JUDGE_PROMPTS_VERSION,
    dataset_path,
)
from .jsonl import DataError
from .judges import NOT_COMPARABLE, identity_of_results

SECTION_START = "<!-- mt-bench:start -->"
SECTION_END = "<!-- mt-bench:end -->"
RADAR_FILE = "mt_bench_radar.png"
DEFAULT_BASELINE = "gpt-3.5-turbo"  # FastChat's pairwise-baseline default


@dataclass(frozen=True)
class PublishResult:
    card: str  # the full README.md that was (or, in a dry run, would be) pushed
    commit_url: str | None = None
    pr_url: str | None = None
    files: tuple[str, ...] = ("README.md",)
    notes: list[str] = field(default_factory=list)  # things the user should know (stderr)


def publish_results(repo_id: str, data_dir: Path, results_file: str | Path | None = None,
                    judge_model: str = "gpt-4", model_id: str | None = None,
                    create_pr: bool = False, dry_run: bool = False,
                    revision: str | None = None) -> PublishResult:
    """Write one model's MT-bench scores into the model card of `repo_id`.

    `results_file` is a judgment JSONL (default DATA_DIR/model_judgment/<judge>_single.jsonl) or
    the JSON object of `mt-bench show --json`. Win rates come from the sibling `_pair.jsonl`.
    A dry run reads the current card (if reachable) and pushes nothing.
    """
    token = _token()
    if not dry_run and not token:  # fail before any HTTP: nothing can be half-written
        raise DataError("no Hugging Face token: set HF_TOKEN or run `hf auth login` "
                        "(publishing needs a token with write access)")
    single, pair_file = _load_single(Path(data_dir), results_file, judge_model)
    model = _pick_model(single, model_id)
    pairwise = _load_pairwise(pair_file, model) if pair_file else None
    who = identity_of_results(single, judge_model)
    judge, comparable = who.judge, who.comparable
    notes: list[str] = []
    if who.label:
        notes.append(f"{who.label}: the card says so")

    from huggingface_hub import ModelCard

    text, read_note = _read_card(repo_id, revision, token, dry_run)
    notes += [read_note] if read_note else []
    try:
        card = ModelCard(text if text is not None else _new_card(repo_id))
    except ValueError as e:
        raise DataError(f"{repo_id}: the current README metadata cannot be parsed "
                        f"({_one_line(str(e), token)}); fix it before publishing") from e

    png, plot_note = _render_radar(single, model, comparable)
    notes += [plot_note] if plot_note else []
    _merge_results(card, repo_id, _eval_results(single["models"][model], pairwise, judge))
    from .calibration import cite

    calibration = cite(Path(data_dir), judge)  # `mt-bench calibrate`'s figures for this judge
    card.text = _with_section(card.text, _section(model, single, pairwise, judge, comparable,
                                                  with_image=png is not None,
                                                  calibration=calibration))
    content = str(card)
    files = ("README.md", RADAR_FILE) if png is not None else ("README.md",)
    if dry_run:
        return PublishResult(card=content, files=files, notes=notes)

    from huggingface_hub import CommitOperationAdd, HfApi

    ops = [CommitOperationAdd("README.md", content.encode())]
    if png is not None:
        ops.append(CommitOperationAdd(RADAR_FILE, png))
    try:
        info = HfApi(token=token).create_commit(
            repo_id, ops, commit_message=f"Add MT-bench results ({model}, judge {judge})",
            revision=revision, create_pr=create_pr)
    except Exception as e:
        raise _hub_error(e, repo_id, revision, token) from e
    return PublishResult(card=content, commit_url=info.commit_url, pr_url=info.pr_url,
                         files=files, notes=notes)


def push_dataset(repo_id: str, private: bool = False, revision: str | None = None) -> str:
    """Upload the packaged dataset folder as is (README with `configs:` + data/*.jsonl), so
    `load_dataset(repo_id, "question")` reads back FastChat's files byte for byte. Returns the
    commit URL."""
    token = _token()
    if not token:
        raise DataError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision and revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, repo_type="dataset", folder_path=dataset_path(),
                                 allow_patterns=["README.md", "data/*.jsonl"], revision=revision,
                                 commit_message=f"Upload MT-bench ({DATASET_REVISION})")
    except Exception as e:
        raise _hub_error(e, repo_id, revision, token) from e
    return str(info.commit_url)


# ---- results ----
def _load_single(data_dir: Path, results_file: str | Path | None,
                 judge_model: str) -> tuple[dict[str, Any], Path | None]:
    from .scoring import judgment_file, results_from_file

    path = Path(results_file) if results_file else judgment_file(data_dir, judge_model, "single")
    if not path.is_file():
        raise DataError(f"{path}: file not found (run `mt-bench judge` first, or pass --results)")
    if path.suffix == ".json":  # the object `mt-bench show --json` prints
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e})") from e
        if not isinstance(results, dict) or results.get("mode") != "single" or "models" not in results:
            raise DataError(f"{path}: expected the single-mode object of `mt-bench show --json`")
        return results, None
    results = results_from_file(path, mode="single")  # with "judge" and "comparable"
    pair = path.with_name(path.name.replace("_single.jsonl", "_pair.jsonl"))
    return results, pair if pair != path and pair.is_file() else None


def _load_pairwise(path: Path, model: str) -> dict[str, Any] | None:
    """Win rates vs FastChat's baseline when the file has them, else vs all other models."""
    from .scoring import results_from_file

    res = results_from_file(path, mode="pairwise-baseline", baseline_model=DEFAULT_BASELINE)
    row = res["models"].get(model)
    if row and model != DEFAULT_BASELINE and row["win"] + row["loss"] + row["tie"] > 0:
        return {**row, "opponent": DEFAULT_BASELINE}
    row = results_from_file(path, mode="pairwise-all")["models"].get(model)
    return {**row, "opponent": "all"} if row else None


def _pick_model(results: dict[str, Any], model_id: str | None) -> str:
    known = sorted(results.get("models") or {})
    if model_id is not None:
        if model_id not in known:
            raise DataError(f"model {model_id!r} has no scores; known models: {', '.join(known) or 'none'}")
        return model_id
    if len(known) != 1:
        raise DataError(f"{len(known)} models have scores ({', '.join(known) or 'none'}): "
                        "choose one with --model-id")
    return known[0]


def _eval_results(scores: dict[str, Any], pairwise: dict[str, Any] | None, judge: str) -> list[Any]:
    """Flatten one model's scores into EvalResults; (metric_type, metric_config) is unique."""
    from huggingface_hub import EvalResult

    args = {"judge_model": judge, "judge_prompts": JUDGE_PROMPTS_VERSION}
    rows: list[tuple[str, str, str | None, Any]] = [
        ("mt_bench_score", "MT-bench score", None, scores["average"]),
        ("mt_bench_score", "MT-bench turn 1", "turn_1", scores.get("turn_1")),
        ("mt_bench_score", "MT-bench turn 2", "turn_2", scores.get("turn_2"))]
    rows += [("mt_bench_score", f"MT-bench {c}", c, v) for c, v in _ordered(scores.get("categories", {}))]
    if pairwise:
        vs = pairwise["opponent"]
        rows += [("mt_bench_win_rate", f"MT-bench win rate vs {vs}", f"vs_{vs}", pairwise["win_rate"]),
                 ("mt_bench_win_rate_adjusted", f"MT-bench adjusted win rate vs {vs}", f"vs_{vs}",
                  pairwise["win_rate_adjusted"])]
    return [EvalResult(task_type="text-generation", task_name="Text Generation",
                       dataset_type=DATASET_ID, dataset_name="MT-bench", dataset_config="question",
                       dataset_split="train", dataset_revision=DATASET_REVISION,
                       metric_type=mtype, metric_name=name, metric_config=config,
                       metric_value=round(float(value), 4), metric_args=dict(args))
            for mtype, name, config, value in rows if value is not None]


def _ordered(categories: dict[str, float]) -> list[tuple[str, float]]:
    order = {c: i for i, c in enumerate(CATEGORIES)}
    return sorted(categories.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))


def _is_ours(result: Any) -> bool:
    return result.dataset_type == DATASET_ID and str(result.metric_type).startswith("mt_bench")


def _merge_results(card: Any, repo_id: str, new: list[Any]) -> None:
    """Replace our previous entries (any judge), keep every other model-index result."""
    kept = [r for r in (card.data.eval_results or []) if not _is_ours(r)]
    card.data.eval_results = kept + new
    card.data.model_name = card.data.model_name or repo_id.split("/")[-1]


# ---- the human section ----
def _section(model: str, single: dict[str, Any], pairwise: dict[str, Any] | None, judge: str,
             comparable: bool, with_image: bool, calibration: str | None = None) -> str:
    s = single["models"][model]
    lo, hi = (s.get("ci95") or [None, None])[:2]
    ci = f" (95% CI {lo:.2f}-{hi:.2f})" if lo is not None and hi is not None else ""
    lines = [SECTION_START, "## MT-bench", "",
             (f"Model `{model}`, judged by `{judge}` with FastChat's judge prompts "
              f"(`{JUDGE_PROMPTS_VERSION}`) on [MT-bench](https://huggingface.co/datasets/{DATASET_ID}) "
              f"(revision `{DATASET_REVISION}`), single-answer grading on a 1-10 scale."), ""]
    if not comparable:  # judges' one wording, with the judge's name in code style
        lines += [f"> Judged by `{judge}`: these scores are **{NOT_COMPARABLE}** numbers.", ""]
    if calibration:  # `mt-bench calibrate`'s figures, next to the label
        lines += [f"> Judge `{judge}`: {calibration} (`mt-bench calibrate`).", ""]
    lines += ["| | score |", "| --- | ---: |", f"| **average** | **{s['average']:.2f}**{ci} |"]
    for key, label in (("turn_1", "turn 1"), ("turn_2", "turn 2")):
        if s.get(key) is not None:
            lines.append(f"| {label} (n={s.get('n_' + key, '?')}) | {s[key]:.2f} |")
    lines += [f"| {c} | {v:.2f} |" for c, v in _ordered(s.get("categories", {}))]
    if pairwise:
        vs = "the other models" if pairwise["opponent"] == "all" else f"`{pairwise['opponent']}`"
        lines += ["", f"Pairwise vs {vs}:", "", "| win | loss | tie | win rate | adjusted win rate |",
                  "| ---: | ---: | ---: | ---: | ---: |",
                  (f"| {pairwise['win']} | {pairwise['loss']} | {pairwise['tie']} | "
                   f"{pairwise['win_rate']:.3f} | {pairwise['win_rate_adjusted']:.3f} |")]
    if with_image:
        lines += ["", f"![MT-bench scores per category]({RADAR_FILE})"]
    lines += ["", "Published with `mt-bench publish` (mt_bench_task).", SECTION_END]
    return "\n".join(lines)


def _with_section(body: str, section: str) -> str:
    """Replace the marked section in place (all copies collapse into one), or append it."""
    if body.count(SECTION_START) != body.count(SECTION_END):
        raise DataError(f"the README has unbalanced {SECTION_START} / {SECTION_END} markers; "
                        "fix the card by hand before publishing")
    pattern = re.compile(re.escape(SECTION_START) + r".*?" + re.escape(SECTION_END), re.DOTALL)
    if not pattern.search(body):
        return body.rstrip("\n") + "\n\n" + section + "\n"
    first = pattern.search(body)
    assert first is not None
    head, tail = body[:first.start()], pattern.sub("", body[first.end():])
    return head + section + tail


def _render_radar(single: dict[str, Any], model: str,
                  comparable: bool) -> tuple[bytes | None, str | None]:
    try:
        from .plot import radar_plot
    except ImportError as e:  # the plot module or matplotlib is missing: publish the numbers only
        return None, f"radar plot skipped ({e}); the card has the table only"
    with tempfile.TemporaryDirectory() as tmp:
        one = {**single, "models": {model: single["models"][model]}}
        out = (radar_plot(one, Path(tmp) / RADAR_FILE) if comparable else
               radar_plot(one, Path(tmp) / RADAR_FILE, title_note=NOT_COMPARABLE))
        return Path(out).read_bytes(), None


def _new_card(repo_id: str) -> str:
    # a metadata block is needed, or ModelCard logs "metadata block was not found"
    return f"---\ntags:\n- mt-bench\n---\n\n# {repo_id.split('/')[-1]}\n"


# ---- Hub I/O ----
def _token() -> str | None:
    from huggingface_hub import get_token

    return get_token()


def _read_card(repo_id: str, revision: str | None, token: str | None,
               dry_run: bool) -> tuple[str | None, str | None]:
    """The current README text, or None for a new card (repo without README, or a dry run that
    cannot see the repo)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        path = hf_hub_download(repo_id, "README.md", revision=revision, token=token)
    except EntryNotFoundError:
        return None, None
    except Exception as e:
        if dry_run:  # a preview still helps; say what it is based on
            what = "not found" if isinstance(e, RepositoryNotFoundError) else "unreachable"
            return None, f"{repo_id} is {what}; showing a new card"
        raise _hub_error(e, repo_id, revision, token) from e
    return Path(path).read_text(encoding="utf-8"), None


def _hub_error(e: Exception, repo_id: str, revision: str | None, token: str | None) -> DataError:
    """One line, no token, and what to do."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        msg = (f"{repo_id}: the Hub refused the token (HTTP {status}); set HF_TOKEN to a token with "
               "write access to this repo, or run `hf auth login`")
    elif isinstance(e, RevisionNotFoundError):
        msg = f"{repo_id}: revision {revision!r} not found"
    elif isinstance(e, RepositoryNotFoundError):
        msg = f"{repo_id}: repository not found (create it first, or check the name and token)"
    elif isinstance(e, HfHubHTTPError):
        detail = getattr(e, "server_message", None) or str(e)
        msg = f"{repo_id}: Hub request failed (HTTP {status}): {_one_line(detail, token)}"
    elif isinstance(e, (LocalEntryNotFoundError, OSError)) or type(e).__module__.startswith("httpx"):
        msg = f"{repo_id}: cannot reach the Hub ({type(e).__name__}: {_one_line(str(e), token)})"
    else:
        raise e
    return DataError(msg)


def _one_line(text: str, token: str | None) -> str:
    text = " ".join(text.split())
    return text.replace(token, "***") if token else text
