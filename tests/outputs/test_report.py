"""`mt-bench report`: a self-contained HTML file; static checks, then a real browser (chromium)."""
from __future__ import annotations

import json
import random
import re
import tempfile
from pathlib import Path

import pytest

from mt_bench_task.cli import main as cli
from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.judge_spec import NOT_COMPARABLE
from mt_bench_task.core.types import PairJudgment
from mt_bench_task.core.workspace import Workspace
from mt_bench_task.outputs import report

CONF = Path(__file__).parents[1] / "conformance"
CHROMIUM = Path("/usr/bin/chromium")
PWN_SCRIPT = "<script>window.__pwned=1</script>"
PWN_IMG = '<img src=x onerror="window.__pwned=1">'
ALERT = "<script>alert(1)</script>"
MARKUP = "**bold** & <b>html</b> </script><!-- x -->\n```python\nprint('</script>')\n```\n"
XSS_MODEL, XSS_QID = "mamba_0_5_dpo_ep1", 81
PAIR_ARGS = ("--judge-model", "gpt-4-turbo", "--mode", "pairwise-all")
BLOB = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.S)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _copy(run: str, dst: Path, models: int | None = None) -> Path:
    """Copy a conformance run file by file (its files are read-only; copytree would keep that)."""
    for f in sorted((CONF / run / "model_answer").glob("*.jsonl"))[:models]:
        _write(dst / "model_answer" / f.name, _jsonl(f))
    return dst


def _report(d: Path, judge: str = "gpt-4") -> Path:
    return report.write_report(data_dir=d, judge_model=judge, out=d / "report.html")


@pytest.fixture(scope="module")
def single(tmp_path_factory) -> Path:
    """jxiw (6 models, 960 judgments) with script, HTML and markdown in one answer and judgment."""
    d = _copy("jxiw", tmp_path_factory.mktemp("single"))
    answers = _jsonl(d / "model_answer" / f"{XSS_MODEL}.jsonl")
    for a in answers:
        if a["question_id"] == XSS_QID:
            turns = a["choices"][0]["turns"]
            turns[0] = f"{PWN_SCRIPT}\n{PWN_IMG}\n{MARKUP}" + turns[0]
    _write(d / "model_answer" / f"{XSS_MODEL}.jsonl", answers)
    rows = _jsonl(CONF / "jxiw" / "model_judgment" / "gpt-4_single.jsonl")
    for r in rows:
        if (r["question_id"], r["model"], r["turn"]) == (XSS_QID, XSS_MODEL, 1):
            r["judgment"] = f"{ALERT} {PWN_IMG} {MARKUP}" + r["judgment"]
    _write(d / "model_judgment" / "gpt-4_single.jsonl", rows)
    return _report(d)


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> Path:
    """lesnikow (pairwise-all, 3 models, gpt-4-turbo), one g2 verdict turned into an API error."""
    d = _copy("lesnikow", tmp_path_factory.mktemp("pair"))
    rows = _jsonl(CONF / "lesnikow" / "model_judgment" / "gpt-4-turbo_pair.jsonl")
    rows[5]["g2_winner"], rows[5]["g2_judgment"] = "error", "$ERROR$"
    _write(d / "model_judgment" / "gpt-4-turbo_pair.jsonl", rows)
    return _report(d, "gpt-4-turbo")


@pytest.fixture(scope="module")
def failing(tmp_path_factory) -> Path:
    """instructlab (120 of 160 judgments score -1, 10 of them $ERROR$), marked as a local judge."""
    d = _copy("instructlab", tmp_path_factory.mktemp("failing"))
    rows = _jsonl(CONF / "instructlab" / "model_judgment" / "gpt-4_single.jsonl")
    for r in rows:
        r["judge"][0], r["local_judge"] = "local-judge", True
    _write(d / "model_judgment" / "local-judge_single.jsonl", rows)
    return _report(d, "local-judge")


@pytest.fixture(scope="module")
def answers_only(tmp_path_factory) -> Path:
    return _report(_copy("jxiw", tmp_path_factory.mktemp("answers"), models=2))


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> Path:
    """20 models x 160 single judgments, answers and judgment texts of realistic length."""
    d = tmp_path_factory.mktemp("large")
    src = [_jsonl(f) for f in sorted((CONF / "jxiw" / "model_answer").glob("*.jsonl"))]
    rng = random.Random(0)
    rows = []
    for i in range(20):
        name = f"model-{i:02d}"
        _write(d / "model_answer" / f"{name}.jsonl",
               [{**a, "model_id": name} for a in src[i % len(src)]])
        for a in src[i % len(src)]:
            for turn in (1, 2):
                score = rng.choice([-1, *range(1, 11)] if rng.random() < 0.05 else range(1, 11))
                rows.append({"question_id": a["question_id"], "model": name,
                             "judge": ["gpt-4", "single-v1"], "user_prompt": "...",
                             "judgment": "The answer is helpful. " * 40 + f"Rating: [[{score}]]",
                             "score": score, "turn": turn, "tstamp": 0.0})
    _write(d / "model_judgment" / "gpt-4_single.jsonl", rows)
    return _report(d)


def _split(html: str) -> tuple[str, dict]:
    """(the page without its data blob, the parsed blob)"""
    blobs = BLOB.findall(html)
    assert len(blobs) == 1
    return BLOB.sub("", html), json.loads(blobs[0])


def _show_json(capsys, data_dir: Path, *args: str) -> dict:
    capsys.readouterr()
    assert cli.main(["show", "--json", "--data-dir", str(data_dir), *args]) == 0
    return json.loads(capsys.readouterr().out)


# ---------------- static ----------------
@pytest.mark.parametrize("name", ["single", "pair", "failing", "answers_only"])
def test_file_is_self_contained(name, request):
    html = request.getfixturevalue(name).read_text(encoding="utf-8")
    page, data = _split(html)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert not re.search(r"<(?:link|iframe|object|embed|img)\b", page, re.I)
    assert html.count("<script") == 2 and html.count("</script>") == 2  # the blob and the app
    assert "default-src 'none'" in page
    if data["radar"]:
        assert data["radar"].startswith("data:image/png;base64,")


def test_untrusted_text_only_escaped_inside_the_blob(single):
    html = single.read_text(encoding="utf-8")
    page, data = _split(html)
    for raw in (PWN_SCRIPT, PWN_IMG, ALERT, "<b>html</b>", "<!--"):
        assert raw not in html
    assert "\\u003cscript\\u003ewindow.__pwned=1\\u003c/script\\u003e" in html
    assert "\\u003c/script\\u003e\\u003c!-- x --\\u003e" in html
    i = data["models"].index(XSS_MODEL)
    assert data["answers"][i][str(XSS_QID)][0].startswith(f"{PWN_SCRIPT}\n{PWN_IMG}\n{MARKUP}")
    assert data["single"]["j"][str(XSS_QID)][str(i)]["1"][1].startswith(f"{ALERT} {PWN_IMG}")


def test_blob_numbers_are_show_json(single, pair, capsys):
    _, data = _split(single.read_text(encoding="utf-8"))
    assert data["single"]["results"] == _show_json(capsys, single.parent)
    assert data["pair"] is None
    _, data = _split(pair.read_text(encoding="utf-8"))
    assert data["single"] is None and data["pair"]["baseline"] is None
    assert data["pair"]["results"] == _show_json(capsys, pair.parent, *PAIR_ARGS)


def test_failures_and_local_judge_label(failing, pair):
    _, data = _split(failing.read_text(encoding="utf-8"))
    kinds = [f["kind"] for f in data["failures"]]
    assert len(kinds) == 120 and kinds.count("API failure ($ERROR$)") == 10
    assert any(NOT_COMPARABLE in label for label in data["labels"])
    _, data = _split(pair.read_text(encoding="utf-8"))
    assert [(f["anchor"], f["kind"]) for f in data["failures"]] == [("j-p-5", "pairwise g2 error")]


def test_pairwise_baseline_is_detected(tmp_path):
    rows = [PairJudgment(81, m, "gpt-3.5-turbo", "tie", "tie", ["gpt-4", "pair-v2"], turn=1)
            for m in ("a", "b", "a")]
    assert report._pair_mode(rows) == ("pairwise-baseline", "gpt-3.5-turbo")
    assert report._pair_mode(rows[:1]) == ("pairwise-all", None)  # 2 models: nothing to tell
    assert report._pair_mode([]) == ("pairwise-all", None)


def test_answers_only(answers_only):
    _, data = _split(answers_only.read_text(encoding="utf-8"))
    assert data["single"] is None and data["pair"] is None and data["failures"] == []
    assert len(data["models"]) == 2 and len(data["answers"][0]) == 80


def test_missing_data_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(DataError, match="data dir not found"):
        report.write_report(tmp_path / "nope", out=tmp_path / "r.html")
    (tmp_path / "model_answer").mkdir()
    with pytest.raises(DataError, match="no answer files"):
        report.write_report(tmp_path, out=tmp_path / "r.html")
    assert cli.main(["report", "--data-dir", str(tmp_path), "--out", str(tmp_path / "r.html")]) == 2
    assert "no answer files" in capsys.readouterr().err
    assert not (tmp_path / "r.html").exists()
    d = _copy("jxiw", tmp_path / "d", models=1)  # a pairwise file where single rows belong
    _write(d / "model_judgment" / "gpt-4_single.jsonl", [{"question_id": 81, "model_1": "a"}])
    with pytest.raises(DataError, match=r"gpt-4_single.jsonl:1: malformed record \(missing key\(s\) \['model'"):
        report.write_report(d, out=tmp_path / "r.html")


def test_cli_writes_the_report(tmp_path, capsys):
    d = _copy("jxiw", tmp_path / "d", models=1)
    assert cli.main(["report", "--data-dir", str(d), "--out", str(tmp_path / "o" / "r.html")]) == 0
    assert (tmp_path / "o" / "r.html").is_file()


# ---------------- real browser ----------------
# A browser test that cannot run fails (it never skips): install Debian's chromium, or leave
# these out on purpose with `-m "not browser"`.


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium, or deselect with -m 'not browser'")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield b
        b.close()


class Page:
    """A page on a report, with every console error and uncaught exception recorded."""

    def __init__(self, browser, path: Path):
        self.errors: list[str] = []
        self.p = browser.new_page(viewport={"width": 1400, "height": 900})
        self.p.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.p.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.p.goto(path.as_uri(), wait_until="load")
        assert self.p.evaluate("window.__reportReady") is True

    def visible_questions(self) -> int:
        return self.p.locator("details.q:not([hidden])").count()

    def open_question(self, qid: int) -> None:
        self.p.click(f"#q-{qid} > summary")
        self.p.wait_for_selector(f"#q-{qid} .qbody")


@pytest.mark.browser
@pytest.mark.parametrize("name", ["single", "pair", "failing", "answers_only"])
def test_page_loads_clean(browser, name, request):
    pg = Page(browser, request.getfixturevalue(name))
    pg.open_question(101)  # has a reference answer
    assert pg.p.locator("#q-101 .ref").count() == 2
    if name != "answers_only":
        pg.p.click("#q-101 details.judgment >> nth=0")
    assert pg.errors == []
    assert pg.visible_questions() == 80


@pytest.mark.browser
def test_untrusted_text_does_not_run(browser, single, tmp_path):
    pg = Page(browser, single)
    pg.open_question(XSS_QID)
    col = pg.p.locator(f'#q-{XSS_QID} .cols[data-turn="1"] .col[data-model="{XSS_MODEL}"]')
    col.locator("details.judgment").click()
    pg.p.wait_for_timeout(200)  # give an injected onerror the chance to fire
    assert pg.p.evaluate("typeof window.__pwned") == "undefined"
    text = col.inner_text()
    for raw in (PWN_SCRIPT, PWN_IMG, ALERT, "<b>html</b>", "print('</script>')"):
        assert raw in text
    assert col.locator("pre.code").first.inner_text() == "print('</script>')"
    assert pg.p.locator("img").count() == 1 and pg.p.locator("b, main script").count() == 0
    assert pg.errors == []
    col.scroll_into_view_if_needed()
    shot = pg.p.screenshot(path=str(tmp_path / "question.png"))
    Path(tempfile.gettempdir(), "report_question_screenshot.png").write_bytes(shot)


@pytest.mark.browser
def test_filters(browser, single, failing):
    pg = Page(browser, single)
    pg.p.select_option("#cat-filter", "math")
    assert pg.visible_questions() == 10
    assert pg.p.inner_text("#qcount") == "showing 10 of 80 questions"
    pg.open_question(111)
    assert pg.p.locator('#q-111 .cols[data-turn="2"] > .col').count() == 6
    for i in (1, 3):
        pg.p.uncheck(f'#model-filter input[data-model-index="{i}"]')
    cols = pg.p.locator('#q-111 .cols[data-turn="1"] > .col')
    assert cols.count() == 4 and "mamba_0_5_dpo_ep3" not in cols.all_inner_texts()[0]
    pg.open_question(112)  # rendered after the change: the filter holds for it too
    assert pg.p.locator('#q-112 .cols[data-turn="2"] > .col').count() == 4
    pg.p.select_option("#cat-filter", "")
    assert pg.visible_questions() == 80
    pg = Page(browser, failing)
    pg.p.check("#failed-filter")
    _, data = _split(failing.read_text(encoding="utf-8"))
    assert pg.visible_questions() == len({f["qid"] for f in data["failures"]})


def _check_table(page, selector: str, models: dict, fields: dict[str, int]) -> None:
    rows = page.locator(f"{selector} tbody tr")
    assert rows.count() == len(models)
    for i in range(rows.count()):
        row = rows.nth(i)
        m = models[row.get_attribute("data-model")]
        for field, digits in fields.items():
            key, _, cat = field.partition(":")
            want = m["categories"].get(cat) if cat else m[key]
            cell = row.locator(f'td[data-field="{field}"]')
            if want is None:
                assert (cell.inner_text(), cell.get_attribute("data-value")) == ("-", "")
            else:  # shown as Python formats it; the attribute holds the exact float
                assert cell.inner_text() == f"{want:.{digits}f}"
                assert float(cell.get_attribute("data-value")) == want


@pytest.mark.browser
@pytest.mark.parametrize("name", ["single", "large"])
def test_leaderboard_equals_show_json(browser, name, request, capsys):
    path = request.getfixturevalue(name)
    shown = _show_json(capsys, path.parent)
    pg = Page(browser, path)
    cats = [c for m in shown["models"].values() for c in m["categories"]]
    _check_table(pg.p, "table.leaderboard", shown["models"],
                 {"turn_1": 2, "turn_2": 2, "average": 2, **{f"cat:{c}": 2 for c in set(cats)}})
    for name_, m in shown["models"].items():
        ci = pg.p.locator(f'table.leaderboard tr[data-model="{name_}"] td[data-field="ci95"]')
        assert [float(ci.get_attribute("data-lo")), float(ci.get_attribute("data-hi"))] == m["ci95"]
        assert ci.inner_text() == f"[{m['ci95'][0]:.2f}, {m['ci95'][1]:.2f}]"
    order = pg.p.locator("table.leaderboard tbody tr").evaluate_all(
        "rs => rs.map(r => r.getAttribute('data-model'))")
    assert order == sorted(shown["models"], key=lambda k: -shown["models"][k]["average"])
    assert pg.errors == []
    shot = pg.p.screenshot(path=str(path.parent / "top.png"))
    Path(tempfile.gettempdir(), f"report_{name}_top.png").write_bytes(shot)
    if name == "single":
        Path(tempfile.gettempdir(), "report_screenshot.png").write_bytes(shot)


@pytest.mark.browser
def test_pairwise_tables_equal_show_json(browser, pair, capsys):
    shown = _show_json(capsys, pair.parent, *PAIR_ARGS)
    pg = Page(browser, pair)
    _check_table(pg.p, "table.pairwise", shown["models"],
                 {"win": 0, "loss": 0, "tie": 0, "win_rate": 3, "loss_rate": 3,
                  "win_rate_adjusted": 3})
    cons = pg.p.locator('[data-field="consistency"]')
    assert float(cons.get_attribute("data-value")) == shown["consistency"]
    assert f"{shown['consistency']:.3f}" in cons.inner_text()
    pg.open_question(81)
    flagged = pg.p.locator('#q-81 div.pairrow[data-consistent="false"]')
    _, data = _split(pair.read_text(encoding="utf-8"))
    want = [r for r in data["pair"]["rows"] if r["q"] == 81 and r["g1"] != r["g2"]]
    assert flagged.count() == len(want) and pg.p.locator("#q-81 div.pairrow").count() == 6
    assert (flagged.count() == 0) or "inconsistent" in flagged.first.inner_text()


@pytest.mark.browser
@pytest.mark.parametrize("name", ["failing", "pair"])
def test_failure_links_resolve(browser, name, request):
    pg = Page(browser, request.getfixturevalue(name))
    pg.p.select_option("#cat-filter", "writing")  # links must also reach filtered-out questions
    pg.p.uncheck('#model-filter input[data-model-index="0"]')
    first = pg.p.locator("a.faillink").first
    first.click()
    target = pg.p.locator(first.get_attribute("href"))
    assert target.is_visible() and "flash" in target.get_attribute("class")
    bad = pg.p.evaluate("""() => Array.from(document.querySelectorAll('a.faillink')).filter(a => {
        a.click();
        const t = document.getElementById(a.getAttribute('href').slice(1));
        return !t || !t.getClientRects().length || location.hash !== a.getAttribute('href');
    }).map(a => a.getAttribute('href'))""")
    assert bad == [] and pg.p.locator("a.faillink").count() == (120 if name == "failing" else 1)
    assert pg.errors == []


@pytest.mark.browser
def test_local_judge_label_is_prominent(browser, failing, tmp_path):
    pg = Page(browser, failing)
    banner = pg.p.locator("#labels .banner.not-comparable")
    assert banner.count() == 1 and NOT_COMPARABLE in banner.inner_text()
    assert banner.is_visible() and banner.bounding_box()["y"] < 200  # at the top, no scrolling
    shot = pg.p.screenshot(path=str(tmp_path / "failing.png"))
    Path(tempfile.gettempdir(), "report_failing_screenshot.png").write_bytes(shot)


@pytest.mark.browser
def test_large_report_opens_fast(browser, large, tmp_path):
    assert large.stat().st_size < 30_000_000
    pg = Page(browser, large)
    load_ms = pg.p.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd")
    render_ms = float(pg.p.get_attribute("body", "data-render-ms"))
    assert load_ms < 2000 and render_ms < 1500, (load_ms, render_ms)
    assert pg.p.locator(".col").count() == 0  # question bodies are built on demand
    pg.open_question(130)
    assert pg.p.locator('#q-130 .cols[data-turn="1"] > .col').count() == 20
    assert pg.errors == []
    pg.p.locator("#q-130").scroll_into_view_if_needed()
    shot = pg.p.screenshot(path=str(tmp_path / "large.png"))
    Path(tempfile.gettempdir(), "report_large_screenshot.png").write_bytes(shot)


@pytest.mark.browser
def test_string_question_ids_open_and_failure_links_resolve(browser, tmp_path):
    """A translated bench's string ids ("81_DE"): questions, answers and judgments by id, and the
    link to an unrated judgment opens its question."""
    d = tmp_path / "german"
    qs = [{"question_id": "82_DE", "category": "writing", "turns": ["Schreibe.", "Kürzer."]},
          {"question_id": "81_DE", "category": "writing", "turns": ["Reise.", "Mit A."]}]
    (d / "question.jsonl").parent.mkdir(parents=True)
    (d / "question.jsonl").write_text("".join(json.dumps(q) + "\n" for q in qs))
    _write(d / "model_answer" / "m.jsonl",
           [{"question_id": q["question_id"], "choices": [{"turns": [f"A {q['question_id']}", "B"]}]}
            for q in qs])
    _write(d / "model_judgment" / "gpt-4_single.jsonl",
           [{"question_id": q["question_id"], "model": "m", "judge": ["gpt-4", "single-v1"],
             "judgment": "no rating" if q["question_id"] == "81_DE" and t == 2 else f"[[{t + 5}]]",
             "score": -1 if q["question_id"] == "81_DE" and t == 2 else t + 5, "turn": t}
            for q in qs for t in (1, 2)])
    path = report.write_report(data_dir=d, judge_model="gpt-4", out=d / "report.html",
                               workspace=Workspace(load_bench("german", d), d))
    pg = Page(browser, path)
    assert pg.visible_questions() == 2
    link = pg.p.locator("a.faillink")
    assert link.count() == 1 and link.get_attribute("href") == "#j-s-81_DE-0-2"
    link.click()
    target = pg.p.locator("[id='j-s-81_DE-0-2']")
    assert target.is_visible() and "flash" in target.get_attribute("class")
    assert "A 81_DE" in pg.p.locator("[id='q-81_DE']").inner_text()
    assert pg.errors == []
