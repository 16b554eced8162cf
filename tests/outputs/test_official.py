"""The official MT-bench grades in the package, and `mt-bench show --leaderboard` / report.

Official averages are recomputed here the way FastChat's show_result does it (drop score -1,
group by model, mean), in plain Python from the packaged file, never pasted.
"""
from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest

from mt_bench_task.core.bench import load_bench, official_answers_dir
from mt_bench_task.outputs import report

ROOT = Path(__file__).resolve().parents[2]
GRADES = ROOT / "mt_bench_task" / "data" / "official_grades" / "gpt-4_single_scores.jsonl"


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _fastchat_show_result(rows: list[dict]) -> dict[str, dict[str, float]]:
    """show_result single mode: rows with score -1 dropped; turn means and the pooled Average."""
    acc: dict[str, dict] = {}
    for r in rows:
        if r["score"] == -1:
            continue
        a = acc.setdefault(r["model"], {1: [], 2: [], "all": []})
        a[r["turn"]].append(r["score"])
        a["all"].append(r["score"])
    return {m: {"turn_1": sum(a[1]) / len(a[1]), "turn_2": sum(a[2]) / len(a[2]),
                "average": sum(a["all"]) / len(a["all"])} for m, a in acc.items()}


def _judged_dir(tmp_path: Path, judge: str, model: str = "my-model") -> Path:
    """A data dir with one judged model (scores vary with the question)."""
    d = tmp_path / "d"
    (d / "model_judgment").mkdir(parents=True)
    cats = load_bench("mt_bench").category_of
    rows = []
    for turn in (1, 2):
        for qid in sorted(cats):
            name = ("single-math-v1" if cats[qid] in ("math", "reasoning", "coding")
                    else "single-v1") + ("-multi-turn" if turn == 2 else "")
            score = -1 if qid == 90 else (qid * 7 + turn) % 10 + 1
            rows.append({"question_id": qid, "model": model, "judge": [judge, name],
                         "user_prompt": "p", "judgment": f"[[{score}]]", "score": score,
                         "turn": turn, "tstamp": 0.0})
    (d / "model_judgment" / f"{judge}_single.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows))
    return d


# ---- shipping ----
def test_official_data_is_packaged_once_with_its_source():
    source = (GRADES.parent / "SOURCE.md").read_text()
    digest = re.search(r"sha256 ([0-9a-f]{64})", source).group(1)
    assert hashlib.sha256(GRADES.read_bytes()).hexdigest() == digest
    rows = _jsonl(GRADES)
    assert len({r["model"] for r in rows}) == 34 and all(r["score"] != -1 for r in rows)
    answers = sorted(p.stem for p in official_answers_dir().glob("*.jsonl"))
    assert answers == sorted(["gpt-4", "gpt-3.5-turbo", "claude-v1", "vicuna-13b-v1.3",
                              "alpaca-13b", "llama-13b"])
    assert (official_answers_dir() / "SOURCE.md").is_file()
    # one copy: no other tracked file has the bytes of a packaged official file
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                             check=True).stdout.decode().split("\0")
    shipped = {hashlib.md5(p.read_bytes()).hexdigest(): p for p in
               [GRADES, *official_answers_dir().glob("*.jsonl")]}
    for name in tracked:
        p = ROOT / name
        if name and p.is_file() and p.suffix == ".jsonl" and p not in shipped.values():
            assert hashlib.md5(p.read_bytes()).hexdigest() not in shipped, name
    cfg = (ROOT / "setup.cfg").read_text()
    assert "data/official_grades/*.jsonl" in cfg and "data/official_answers/*.jsonl" in cfg


# ---- show --leaderboard ----
def test_leaderboard_json_lists_35_models_flags_and_fastchat_averages(mt_bench, tmp_path):
    d = _judged_dir(tmp_path, "gpt-4")
    res = mt_bench("show", "--data-dir", str(d), "--leaderboard", "--json")
    assert res.returncode == 0, res.stderr
    board = json.loads(res.stdout)
    plain = json.loads(mt_bench("show", "--data-dir", str(d), "--json").stdout)
    assert len(board["models"]) == 35
    assert [n for n, m in board["models"].items() if not m["official"]] == ["my-model"]
    assert board["models"]["my-model"] == {**plain["models"]["my-model"], "official": False}
    assert (board["mode"], board["rows"], board["rows_dropped"]) == ("single", 160, 2)
    expected = _fastchat_show_result(_jsonl(GRADES))
    official = {n: m for n, m in board["models"].items() if m["official"]}
    assert set(official) == set(expected)
    for name, want in expected.items():
        for key, value in want.items():
            assert official[name][key] == pytest.approx(value, rel=1e-12), (name, key)
    averages = [m["average"] for m in board["models"].values()]
    assert averages == sorted(averages, reverse=True)  # ranked, best first
    assert board["judge"] == "gpt-4" and board["comparable"] is True
    assert "not comparable" not in res.stderr


def test_leaderboard_text_of_a_non_comparable_judge_says_so_at_the_top(mt_bench, tmp_path):
    d = _judged_dir(tmp_path, "gpt-4o")
    res = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", "--leaderboard")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    table = next(i for i, ln in enumerate(lines) if ln.startswith("#####"))
    assert any("judged by gpt-4o: not comparable with published MT-bench" in ln for ln in lines[:table])
    body = [ln for ln in lines[table + 2:] if re.match(r"\s*\d+\s", ln)]
    assert len(body) == 35
    mine = [ln for ln in body if "my-model" in ln]
    assert len(mine) == 1 and "YOURS: judge gpt-4o" in mine[0] and "[" in mine[0]
    assert sum("official: published GPT-4 grades" in ln for ln in body) == 34
    as_json = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", "--leaderboard", "--json")
    assert json.loads(as_json.stdout)["comparable"] is False
    assert "not comparable with published MT-bench" in as_json.stderr


def test_a_users_model_named_like_an_official_one_stays_apart(mt_bench, tmp_path):
    d = _judged_dir(tmp_path, "gpt-4", model="gpt-4")
    board = json.loads(mt_bench("show", "--data-dir", str(d), "--leaderboard", "--json").stdout)
    assert len(board["models"]) == 35
    assert board["models"]["gpt-4"]["official"] is False
    assert board["models"]["gpt-4 (official)"]["official"] is True


@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_leaderboard_plot_and_user_mistakes(mt_bench, tmp_path):
    d = _judged_dir(tmp_path, "gpt-4o")
    png = tmp_path / "radar.png"
    res = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", "--leaderboard",
                   "--plot", str(png), "--reference-models", "gpt-4", "llama-13b")
    assert res.returncode == 0, res.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png.unlink()
    res = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", "--leaderboard",
                   "--plot", str(png))  # the default reference models
    assert res.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for args in (["--leaderboard", "--plot", str(tmp_path / "x.png"), "--reference-models", "nope"],
                 ["--reference-models", "gpt-4"],
                 ["--leaderboard", "--mode", "pairwise-all"]):
        bad = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", *args)
        assert bad.returncode == 2, args
        assert bad.stderr.startswith("mt-bench show: error: ") and bad.stderr.count("\n") == 1
        assert not (tmp_path / "x.png").exists()
    bad = mt_bench("show", "--data-dir", str(d), "--bench-name", "vicuna_bench", "--leaderboard")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1  # another bench: refused
    assert bad.stderr.startswith("mt-bench show: error: ") and "vicuna_bench" in bad.stderr
    (d / "question.jsonl").write_text(Path(load_bench("mt_bench").sources["questions"])
                                      .read_text().splitlines()[0] + "\n")  # a custom bench
    bad = mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o", "--leaderboard")
    assert bad.returncode == 2 and "not MT-bench's questions" in bad.stderr


# ---- report ----
@pytest.mark.slow  # end to end; the fast loop covers the feature
def test_report_placement_marks_official_rows(mt_bench, tmp_path):
    d = _judged_dir(tmp_path, "gpt-4o")
    (d / "model_answer").mkdir()
    answers = _jsonl(official_answers_dir() / "alpaca-13b.jsonl")
    (d / "model_answer" / "my-model.jsonl").write_text(
        "".join(json.dumps({**a, "model_id": "my-model"}) + "\n" for a in answers))
    payload = report.build_payload(d, "gpt-4o", leaderboard=True)
    board = json.loads(mt_bench("show", "--data-dir", str(d), "--judge-model", "gpt-4o",
                                "--leaderboard", "--json").stdout)
    rows = payload["placement"]["rows"]
    assert [r["model"] for r in rows] == list(board["models"])
    assert [r["official"] for r in rows] == [m["official"] for m in board["models"].values()]
    assert all((r["ci95"] is None) == r["official"] for r in rows)
    assert payload["placement"]["comparable"] is False
    assert "not comparable" in payload["placement"]["label"]
    assert report.build_payload(d, "gpt-4o")["placement"] is None
    out = tmp_path / "r.html"
    res = mt_bench("report", "--data-dir", str(d), "--judge-model", "gpt-4o", "--leaderboard",
                   "--out", str(out))
    assert res.returncode == 0, res.stderr
    html = out.read_text()
    assert "tr.official td" in html and 'id="placement"' in html


@pytest.mark.browser
def test_report_placement_renders_official_rows_differently(tmp_path):
    from test_report import CHROMIUM, Page

    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} not found: apt-get install -y chromium, or deselect with -m 'not browser'")
    from playwright.sync_api import sync_playwright

    d = _judged_dir(tmp_path, "gpt-4o")
    (d / "model_answer").mkdir()
    answers = _jsonl(official_answers_dir() / "alpaca-13b.jsonl")
    (d / "model_answer" / "my-model.jsonl").write_text(
        "".join(json.dumps({**a, "model_id": "my-model"}) + "\n" for a in answers))
    out = report.write_report(d, "gpt-4o", tmp_path / "r.html", leaderboard=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                               args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        pg = Page(b, out)
        rows = pg.p.locator("table.placement tbody tr")
        assert rows.count() == 35
        official = pg.p.locator('table.placement tr[data-official="true"]')
        assert official.count() == 34
        mine = pg.p.locator('table.placement tr[data-model="my-model"]')
        style = "e => [getComputedStyle(e.cells[1]).fontStyle, getComputedStyle(e.cells[1]).backgroundColor]"
        assert official.first.evaluate(style) != mine.evaluate(style)  # visibly different
        assert "not comparable with published MT-bench" in pg.p.locator("#placement").inner_text()
        assert pg.errors == []
        pg.p.locator("#placement").screenshot(path=str(tmp_path / "placement.png"))
        b.close()
