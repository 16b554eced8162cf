"""The exit-code contract, for user mistakes across the subcommands: exit 2, exactly one line
`mt-bench <command>: error: ...` on stderr, no traceback, and nothing written anywhere.

Each case runs the CLI (in this process, its exit code as the `mt-bench` entry point gives it) in
an empty working directory, against copies of real FastChat files; the tree is compared before and
after. tests/e2e runs a mistake through the real entry point.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

CONFORMANCE = Path(__file__).parents[1] / "conformance"
PAIR_FILE = "lesnikow/model_judgment/gpt-4-turbo_pair.jsonl"
SINGLE_FILE = "jxiw/model_judgment/gpt-4_single.jsonl"
ANSWER = "jxiw/model_answer/mamba_0_5_dpo_ep1.jsonl"

# (subcommand, arguments, a word the one-line message must contain)
MISTAKES: list[tuple[str, list[str], str]] = [
    ("show", ["--data-dir", "nowhere"], "nowhere"),
    ("show", ["--input-file", "{pair}", "--mode", "pairwise-all", "--plot", "x.png"], "--plot"),
    ("show", ["--input-file", "{pair}", "--mode", "pairwise-baseline", "--plot", "x.png"], "--plot"),
    ("show", ["--input-file", "{single}", "--mode", "pairwise-all"], "pairwise"),
    # the default baseline (gpt-3.5-turbo) played no game in this pairwise-all file
    ("show", ["--input-file", "{pair}", "--mode", "pairwise-baseline"], "--baseline-model"),
    ("show", ["--input-file", "{pair}", "--mode", "pairwise-baseline", "--baseline-model", "x"],
     "'x'"),
    ("show", ["--input-file", "bad.jsonl"], "bad.jsonl:2"),
    ("show", ["--input-file", "missing.jsonl"], "missing.jsonl"),
    ("show", ["--input-file", "empty.jsonl"], "no judgment records"),
    ("show", ["--input-file", "deep.jsonl"], "deep.jsonl:1"),
    ("show", ["--input-file", "huge.jsonl"], "huge.jsonl:1"),
    ("judge", ["--data-dir", "nowhere", "--dry-run"], "nowhere"),
    ("judge", ["--data-dir", "d", "--model-list", "nope", "--dry-run"], "nope"),
    ("judge", ["--data-dir", "broken", "--dry-run"], "broken.jsonl:2"),
    ("judge", ["--data-dir", "d", "--judge-repeats", "0", "--dry-run"], "--judge-repeats"),
    ("gen", ["--model-path", "default", "--batch-size", "0"], "batch"),
    ("gen", ["--model-path", "default", "--max-new-token", "-5"], "max"),
    ("gen-api", ["--model", "x", "--parallel", "-1"], "parallel"),
    ("report", ["--data-dir", "nowhere"], "nowhere"),
    ("publish", ["--repo-id", "u/m", "--results", "missing.json", "--dry-run"], "missing.json"),
    ("publish", ["--repo-id", "u/m", "--data-dir", "d", "--dry-run"], "model"),
    ("show", ["--data-dir", "d", "--leaderboard", "--mode", "pairwise-all"], "single"),
    ("show", ["--data-dir", "d", "--leaderboard", "--plot", "x.png", "--reference-models", "nope"],
     "nope"),
    ("show", ["--data-dir", "d", "--reference-models", "gpt-4"], "--leaderboard"),
    ("report", ["--data-dir", "broken", "--leaderboard"], "single"),
    ("report", ["--data-dir", "d", "--bench-name", "vicuna_bench", "--leaderboard"], "MT-bench"),
    ("show", ["--data-dir", "d", "--bench-name", "vicuna_bench", "--leaderboard"], "MT-bench"),
    ("calibrate", ["--judge-model", "gpt-4o", "--models", "nope"], "nope"),
    ("calibrate", ["--judge-model", "gpt-4o", "--parallel", "0"], "parallel"),
    ("calibrate", ["--models", "gpt-4"], "--judge-model"),
    ("show", ["--no-such-flag"], "--no-such-flag"),
    ("judge", ["--mode", "triple"], "triple"),
    ("import-inspect", ["missing.eval", "--data-dir", "out"], "missing.eval"),
    ("import-inspect", ["bad.jsonl", "--data-dir", "out"], "bad.jsonl"),  # not an inspect log
    # a model dir transformers cannot read: no tokenizer; a tokenizer and template but no weights
    ("gen", ["--model-path", "no_tokenizer", "--data-dir", "out"], "tokenizer"),
    ("gen", ["--model-path", "no_weights", "--data-dir", "out"], "no file named model.safetensors"),
]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wd = tmp_path_factory.mktemp("mistakes")
    (wd / "d" / "model_answer").mkdir(parents=True)
    shutil.copy(CONFORMANCE / ANSWER, wd / "d" / "model_answer")
    (wd / "d" / "model_judgment").mkdir()
    shutil.copy(CONFORMANCE / SINGLE_FILE, wd / "d" / "model_judgment")
    # two judged models in d: publish needs --model-id
    (wd / "broken" / "model_answer").mkdir(parents=True)
    good = (CONFORMANCE / ANSWER).read_text().splitlines()[0]
    (wd / "broken" / "model_answer" / "broken.jsonl").write_text(good + "\n{\"question_id\": 82,\n")
    (wd / "bad.jsonl").write_text((CONFORMANCE / SINGLE_FILE).read_text().splitlines()[0]
                                  + "\nnot json\n")
    (wd / "empty.jsonl").write_text("\n\n")
    (wd / "deep.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")  # RecursionError in json
    row = (CONFORMANCE / SINGLE_FILE).read_text().splitlines()[0]
    (wd / "huge.jsonl").write_text(re.sub(r'"score": [0-9]+', '"score": 1e400', row, count=1) + "\n")
    from mt_bench_task.engine.models import default_model_dir

    (wd / "no_tokenizer").mkdir()
    (wd / "no_tokenizer" / "config.json").write_text("{}")
    (wd / "no_weights").mkdir()
    for f in default_model_dir().iterdir():
        if not f.name.endswith(".safetensors"):
            shutil.copy(f, wd / "no_weights")
    return wd


@pytest.mark.parametrize("command,args,word", MISTAKES,
                         ids=[f"{c}-{'-'.join(a)[:40]}" for c, a, _ in MISTAKES])
def test_user_mistake_exits_2_with_one_line(mt_bench, workdir: Path, command: str, args: list[str],
                                            word: str) -> None:
    args = [a.format(pair=CONFORMANCE / PAIR_FILE, single=CONFORMANCE / SINGLE_FILE) for a in args]
    before = _tree(workdir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["OPENAI_API_KEY"] = "sk-test-secret-never-shown-123"
    proc = mt_bench(command, *args, cwd=workdir, env=env)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"mt-bench {command}: error: "), proc.stderr
    assert word in lines[0], proc.stderr
    assert "sk-test-secret" not in proc.stderr + proc.stdout
    assert _tree(workdir) == before, "a failed command wrote or changed files"
