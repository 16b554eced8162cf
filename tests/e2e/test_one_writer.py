"""One writer per output file (issue 33, item 5): a second judge on the same output waits for the
first and then sends nothing twice, or with --fail-if-locked stops naming the holder's pid; show
counts a key written twice once and says so."""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from support.answer_dirs import CONF, answer_dir
from support.fake_openai import FakeOpenAI, Gate

from mt_bench_task.core.data import read_single_judgments
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.writer_lock import lock_file, one_writer
from mt_bench_task.engine.api import generate_api_answers

REPO = Path(__file__).resolve().parents[2]


def _judge(d: Path, url: str, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["OPENAI_API_KEY"] = "sk-test-lock-123456"
    return subprocess.Popen([sys.executable, "-m", "mt_bench_task.cli.main", "judge",
                             "--data-dir", str(d), "--openai-api-base", url, "--first-n", "1",
                             *extra], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _lines(stream) -> queue.Queue[str]:
    """The stream's lines as they come (a reader thread), so a test can wait for one."""
    q: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [q.put(ln) for ln in stream], daemon=True).start()
    return q


def _wait_for_line(q: queue.Queue[str], needle: str, timeout: float = 60) -> str:
    seen = []
    while True:
        line = q.get(timeout=timeout)  # queue.Empty: the test fails, nothing hangs
        seen.append(line)
        if needle in line:
            return line


@pytest.mark.slow  # three processes; the fast loop has the in-process twin (gen-api below)
def test_a_second_judge_waits_for_the_first_then_sends_nothing_twice(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    gate = Gate("chat", 1)  # the first run's requests wait here until the test releases them
    with FakeOpenAI("judge", gate=gate) as server:
        first = second = None
        try:
            first = _judge(d, server.url, "--parallel", "2")
            gate.wait()  # the first run holds the lock, mid-judging
            second = _judge(d, server.url, "--parallel", "2")
            waiting = _wait_for_line(_lines(second.stderr), "is writing it")
            assert f"{out}: process {first.pid} on " in waiting and "waiting" in waiting

            busy = _judge(d, server.url, "--fail-if-locked")
            _, err = busy.communicate(timeout=60)
            assert busy.returncode == 2 and f"process {first.pid} on" in err
            assert err.strip().splitlines()[-1].startswith("mt-bench judge: error: ")
        finally:
            gate.release()
            for p in (first, second):
                if p is not None:
                    p.wait(timeout=60)
        assert first.returncode == 0 and second.returncode == 0
        assert server.total == 2  # the first run's two; the others found both judgments done
    records = read_single_judgments(out)
    assert len(records) == 2 and len({r.key for r in records}) == 2
    assert not lock_file(out).exists()  # each run removes its lock when done


def test_gen_api_fails_fast_naming_this_process_when_asked(tmp_path):
    out = tmp_path / "model_answer/m.jsonl"
    with FakeOpenAI("echo") as server, one_writer(out):
        with pytest.raises(DataError, match=rf"process {os.getpid()} on .* is writing it"):
            generate_api_answers("m", tmp_path, server.url, question_end=1, wait_for_lock=False)
        assert server.total == 0
    with FakeOpenAI("echo") as server:  # released: the same call runs
        stats = generate_api_answers("m", tmp_path, server.url, question_end=1,
                                     wait_for_lock=False)
    assert stats.questions == 1 and out.is_file() and not lock_file(out).exists()


def test_show_counts_a_key_written_twice_once_and_warns(tmp_path, mt_bench):
    src = CONF / "jxiw/model_judgment/gpt-4_single.jsonl"
    lines = src.read_text().splitlines()
    clean, doubled = tmp_path / "clean", tmp_path / "doubled"
    for d, extra in ((clean, []), (doubled, lines[:10])):
        (d / "model_judgment").mkdir(parents=True)
        (d / "model_judgment/gpt-4_single.jsonl").write_text("\n".join(lines + extra) + "\n")
    clean_run = mt_bench("show", "--data-dir", clean, "--json")
    assert clean_run.returncode == 0
    expected = json.loads(clean_run.stdout)
    code, got, err = mt_bench("show", "--data-dir", doubled, "--json")
    assert code == 0
    shown = json.loads(got)
    assert shown["models"] == expected["models"]  # scores, CIs and counts as if written once
    assert shown.keys() == expected.keys()
    assert "10 records repeat the key (question_id, model(s), turn, judge, repeat)" in err
