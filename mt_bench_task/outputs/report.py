"""Stage 6, report: one self-contained HTML file to read a run (`mt-bench report`).

Dataset: the data dir in FastChat's layout (model_answer/, model_judgment/, reference_answer/).
Paper: Zheng et al., "Judging LLM-as-a-judge with MT-Bench and Chatbot Arena", arXiv:2306.05685.
Shows: the leaderboard and pairwise tables (numbers from `scoring.results_from_records`, exactly what
`mt-bench show --json` prints), the radar plot, a browser over questions, answers and judgments,
and the failed judgments. Everything, the PNG included, is embedded: the file opens offline.

Safety: answers and judgments are untrusted text. They travel only inside one
`<script type="application/json">` blob with `<`, `>` and `&` escaped, and the page's script puts
them in the DOM as text nodes. A CSP with the script's hash blocks anything else from running.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from mt_bench_task.core import data, scoring
from mt_bench_task.core.bench import INLINE, Bench, order_categories, with_references
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.ids import QuestionId, question_key
from mt_bench_task.core.judge_spec import DEFAULT_JUDGE, NOT_COMPARABLE, identity_of_records
from mt_bench_task.core.results import Results
from mt_bench_task.core.served import mixed_note, served_models
from mt_bench_task.core.types import Judgment, PairJudgment, SingleJudgment
from mt_bench_task.core.workspace import Workspace, workspace_at
from mt_bench_task.outputs import extra_stats
from mt_bench_task.outputs.official import calibration_label

_TEMPLATE = Path(__file__).parent / "templates" / "report.html"
_DATA_SLOT = "__REPORT_DATA__"
_HASH_SLOT = "__SCRIPT_HASH__"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)
_EXCERPT = 160
J = TypeVar("J", SingleJudgment, PairJudgment)


def write_report(data_dir: Path, judge_model: str = DEFAULT_JUDGE, out: Path = Path("report.html"),
                 seed: int = 0, workspace: Workspace | None = None, leaderboard: bool = False) -> Path:
    """Write the report for DATA_DIR's answers and `<judge>_single` / `<judge>_pair` judgments
    on the workspace's bench (default: DATA_DIR's, `workspace_at`); `leaderboard`: add the
    placement among the published MT-bench models (official rows; MT-bench only)."""
    html = render_html(build_payload(Path(data_dir), judge_model, seed, workspace, leaderboard))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def build_payload(data_dir: Path, judge_model: str = DEFAULT_JUDGE, seed: int = 0,
                  workspace: Workspace | None = None, leaderboard: bool = False) -> dict[str, Any]:
    """Everything the page shows, as one JSON-able dict (no HTML in it)."""
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data dir not found")
    bench = workspace_at(data_dir, workspace).bench
    if leaderboard:  # the placement is among MT-bench's published models: refuse another bench
        from mt_bench_task.outputs.official import check_mt_bench

        check_mt_bench(bench)
    answer_models = data.list_answer_models(data_dir)
    if not answer_models:
        raise DataError(f"{data_dir / 'model_answer'}: no answer files (*.jsonl); "
                        f"run `mt-bench gen` or `mt-bench gen-api` first")
    questions = bench.questions
    categories = bench.category_of
    single_path = data.judgment_file(data_dir, judge_model, "single")
    pair_path = data.judgment_file(data_dir, judge_model, "pairwise-all")
    single_records = _records(single_path, data.read_single_judgments)
    pair_records = _records(pair_path, data.read_pair_judgments)
    records: list[Judgment] = [*(single_records or []), *(pair_records or [])]

    # Judged models without an answer file (a pairwise baseline) still get a column.
    judged = {r.model for r in single_records or []}
    judged |= {m for r in pair_records or [] for m in (r.model_1, r.model_2)}
    models = answer_models + sorted(judged - set(answer_models))
    index = {m: i for i, m in enumerate(models)}
    chosen = {r.references for r in records}
    if chosen == {INLINE}:  # judged with `--references inline`: show the references the judge saw
        bench = with_references(bench, INLINE)
    ref_name, refs = bench.reference_for(judge_model)
    ref_name = INLINE if chosen == {INLINE} else ref_name

    failures: list[dict[str, Any]] = []
    scored = (scoring.results_from_records(single_records, "single", categories=categories,
                                           seed=seed, source=str(single_path))
              if single_records is not None else None)
    if scored is not None and single_records is not None:  # GPT-4-equivalent, length-controlled
        scored = extra_stats.attach_for(scored, data_dir, bench, single_path, seed, single_records)
    single = _single(single_records, scored, index, failures)
    pair = _pair(pair_records, pair_path, index, failures, categories,
                 lambda res, rows, base: extra_stats.attach(  # length-controlled, as show
                     res, rows, categories, answers=extra_stats.answers_for(
                         data_dir, res, bench.official_answers, base), baseline=base, seed=seed))
    labels = scoring.judge_labels(records, judge_model)
    served = served_models(records)
    labels += filter(None, [mixed_note(served)])
    if leaderboard and single is None:
        raise DataError(f"{single_path}: not found; the leaderboard placement needs single-mode "
                        f"judgments (`mt-bench judge --mode single`)")
    return {
        "meta": {"data_dir": str(data_dir), "judge_model": judge_model, "seed": seed,
                 "served_by": served,
                 "bench": bench.name,
                 "single_file": str(single_path), "pair_file": str(pair_path),
                 "reference": ref_name,
                 "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")},
        "labels": labels,
        "models": models,
        "questions": [{"id": _rid(q.question_id), "category": q.category, "turns": q.turns,
                       "ref": refs[q.key].turns if q.key in refs else None}
                      for q in questions],
        "answers": [_answers(data_dir, m, bench.official_answers) for m in models],
        "thoughts": [_thoughts(data_dir, m, bench.official_answers) for m in models],
        "answer_notes": data.answer_notes(data_dir, models, bench.official_answers),
        "single": single,
        "pair": pair,
        "failures": failures,
        "radar": _radar(scored, labels, bench) if scored else None,
        "calibration": _calibration(data_dir, records, judge_model),
        "comparison": extra_stats.comparison_payload(scored, single_records or [], seed),
        "placement": _placement(scored, single_records or [], judge_model, seed)
        if leaderboard and scored else None,
    }


def _calibration(data_dir: Path, records: list[Judgment], judge_model: str) -> dict | None:
    """The judge label with the saved `mt-bench calibrate` figures, when there are some."""
    found = calibration_label(data_dir, records, judge_model)
    if found is None:
        return None
    return {"text": found[0], "comparable": identity_of_records(records, judge_model).comparable}


def _placement(results: Results, records: Sequence[SingleJudgment], judge_model: str,
               seed: int) -> dict[str, Any]:
    """The user's models among the official ones, ranked; official rows are flagged."""
    from mt_bench_task.outputs.official import leaderboard

    board = leaderboard(results, seed)
    who = identity_of_records(records, judge_model)
    return {"judge": who.judge, "comparable": who.comparable,
            "label": None if who.comparable else f"{who.label}; your models were graded by "
                     f"{who.judge}, the official ones by GPT-4",
            "rows": [{"model": name, "official": m["official"], "average": m["average"],
                      "turn_1": m["turn_1"], "turn_2": m["turn_2"],
                      "ci95": None if m["official"] else m["ci95"]}
                     for name, m in board["models"].items()]}


def _records(path: Path, read: Callable[[Path], list[J]]) -> list[J] | None:
    """A judgment file's records (typed reader: file:line on a bad one), or None when that kind
    of judging was not run."""
    return read(path) if path.is_file() else None


def _answers(data_dir: Path, model: str, fallback: Path | None) -> dict[str, list[str]]:
    """A model's answers by id; {} when it has no answer file (judged but never answered here:
    the page says "no answer"); a malformed file is a DataError naming file:line."""
    if data.find_answer_file(data_dir, model, fallback) is None:
        return {}
    return {str(_rid(qid)): a.turns for qid, a in data.load_answers(data_dir, model, fallback).items()}


def _thoughts(data_dir: Path, model: str, fallback: Path | None) -> dict[str, list[str | None]]:
    """Each answered question's thought per turn (None: none), for questions with a thought."""
    try:
        answers = data.load_answers(data_dir, model, fallback)
    except DataError:
        return {}
    return {str(_rid(qid)): a.choices[0].reasoning for qid, a in answers.items()
            if any(r is not None for r in a.choices[0].reasoning)}


def _rid(question_id: QuestionId) -> QuestionId:
    """A question's id in the page: its key (1 and "1" are one question; "81_DE" as written)."""
    return question_key(question_id)


def _single(records: list[SingleJudgment] | None, results: Results | None, index: dict[str, int],
            failures: list[dict[str, Any]]) -> dict[str, Any] | None:
    if records is None or results is None:
        return None
    # {qid: {model index: {turn: [score, judgment, prompt name]}}}; the last row wins (FastChat).
    # A text a minimal FastChat record lacks reads as empty.
    by_q: dict[str, dict[str, dict[str, list[Any]]]] = {}
    for r in records:
        mi, qid, turn, text = index[r.model], _rid(r.question_id), r.turn, r.judgment or ""
        by_q.setdefault(str(qid), {}).setdefault(str(mi), {})[str(turn)] = [
            r.score, text, r.judge[1]]
        if r.score == -1:
            kind = "API failure ($ERROR$)" if r.failed else "no rating found (score -1)"
            failures.append({"anchor": f"j-s-{qid}-{mi}-{turn}", "qid": qid, "turn": turn,
                             "model": r.model, "kind": kind, "excerpt": text[:_EXCERPT]})
    present = {c for _, m in results.ranked() for c in m.categories}
    cats = order_categories(present, results.categories)
    return {"results": results.to_json(), "categories": cats, "j": by_q}


def _pair_mode(records: list[PairJudgment]) -> tuple[str, str | None]:
    """A model in every row among 3+ models is a pairwise-baseline run; anything else is -all."""
    pairs = [{r.model_1, r.model_2} for r in records]
    common = set.intersection(*pairs) if pairs else set()
    if len(common) == 1 and len(set.union(*pairs)) > 2:
        return "pairwise-baseline", common.pop()
    return "pairwise-all", None


def _pair(records: list[PairJudgment] | None, path: Path, index: dict[str, int],
          failures: list[dict[str, Any]], categories: dict[QuestionId, str],
          beside: Callable[[Results, list[PairJudgment], str | None], Results]
          ) -> dict[str, Any] | None:
    if records is None:
        return None
    mode, baseline = _pair_mode(records)
    results = beside(scoring.results_from_records(records, mode, baseline_model=baseline,
                                                  categories=categories, source=str(path)),
                     records, baseline)
    out = []
    for i, r in enumerate(records):
        texts = {"g1": r.g1_judgment or "", "g2": r.g2_judgment or ""}  # empty when absent
        out.append({"q": _rid(r.question_id), "t": r.turn, "a": index[r.model_1],
                    "b": index[r.model_2], "g1": r.g1_winner, "g2": r.g2_winner,
                    "j1": texts["g1"], "j2": texts["g2"], "p": r.judge[1]})
        for g, winner in (("g1", r.g1_winner), ("g2", r.g2_winner)):
            if winner == "error":
                failures.append({"anchor": f"j-p-{i}", "qid": _rid(r.question_id), "turn": r.turn,
                                 "model": f"{r.model_1} vs {r.model_2}",
                                 "kind": f"pairwise {g} error", "excerpt": texts[g][:_EXCERPT]})
    return {"results": results.to_json(), "baseline": baseline, "rows": out}


def _radar(results: Results, labels: list[str], bench: Bench) -> str | None:
    if not results.models:
        return None
    from mt_bench_task.outputs.plot import radar_plot  # matplotlib: only when there is something to draw

    with tempfile.TemporaryDirectory() as tmp:
        png = radar_plot(results, Path(tmp) / "radar.png",
                         title_note=NOT_COMPARABLE if labels else None, bench_name=bench.name)
        return "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode("ascii")


def _finite(obj: Any) -> Any:
    """NaN / inf are not JSON (JSON.parse would reject the whole blob): they become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def script_json(obj: Any) -> str:
    """JSON that cannot end its <script> element or open a comment: <, > and & as \\u escapes."""
    text = json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def render_html(payload: dict[str, Any]) -> str:
    template = _TEMPLATE.read_text(encoding="utf-8")
    scripts = _INLINE_SCRIPT.findall(template)
    if len(scripts) != 1 or template.count(_DATA_SLOT) != 1:
        raise RuntimeError(f"{_TEMPLATE}: expected one inline <script> and one {_DATA_SLOT}")
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode("utf-8")).digest()).decode("ascii")
    head, _, tail = template.replace(_HASH_SLOT, f"sha256-{digest}").partition(_DATA_SLOT)
    return head + script_json(payload) + tail  # concatenation: the data is never re-scanned
