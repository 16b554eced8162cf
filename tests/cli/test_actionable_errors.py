"""Errors a user can act on (issue 33, item 6): transport failures named, an OSError one line with
its path before any paid request, a malformed answer file refused by report, names drawn literally
in plots, base URL credentials never printed, and --request-timeout against a server that hangs."""
from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import time
from pathlib import Path

import pytest
from support.answer_dirs import CONF, MODEL, answer_dir
from support.cli import exit_code_only, key_only_env
from support.fake_openai import FakeOpenAI, Gate

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.core.redact import redact, redact_url, url_secrets

USER, PASSWORD = "bob", "hunter2-SECRET"
BASIC = "Ym9iOmh1bnRlcjItU0VDUkVU"  # base64 of bob:hunter2-SECRET, the header httpx derives


ENV = key_only_env("sk-test-errors-123456")


@pytest.fixture
def main(mt_bench):
    """`mt-bench ARGV` in this process with a test key: its exit code, its output to capsys."""
    return exit_code_only(mt_bench, ENV)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if "error:" in ln]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


# ---- transport failures, named ----
def test_a_wrong_port_says_connection_refused(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    assert main(["judge", "--data-dir", str(d), "--openai-api-base", url]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.endswith(f"cannot reach OpenAI-compatible server at {url}: connection refused")


def test_a_reset_connection_is_named(caplog):
    with FakeOpenAI("judge", faults=["reset", "reset"]) as server:
        client = OpenAIChatClient(server.url, "sk-test-1234567", max_retries=1, backoff_base=0.01)

        async def go():
            try:
                return await client.complete("gpt-4", [{"role": "user", "content": "hi"}],
                                             temperature=0, max_tokens=5)
            finally:
                await client.close()

        with caplog.at_level(logging.WARNING):
            c = asyncio.run(go())
    assert c.failed and server.faults_injected["reset"] == 2
    assert "connection reset by the server" in caplog.text


def test_request_timeout_fails_a_hung_request_in_bounded_time(tmp_path, capsys, main):
    """The server takes every request and never answers (held until the test releases it): with
    --request-timeout 0.2 each request is given up after 7 attempts of 0.2 s."""
    d = answer_dir(tmp_path)
    gate = Gate("chat", 1)  # every chat request waits, unanswered, until released
    with FakeOpenAI("judge", gate=gate) as server:
        try:
            start = time.monotonic()
            code = main(["judge", "--data-dir", str(d), "--openai-api-base", server.url,
                         "--first-n", "1", "--parallel", "2", "--request-timeout", "0.2"])
            elapsed = time.monotonic() - start
        finally:
            gate.release()
    err = capsys.readouterr().err
    assert code == 1 and "failures: 2 of 2 judgments" in err
    assert "timed out (no answer within 0.2 s)" in err
    assert server.total == 2 * 7  # 2 matches, 1 + 6 retries each, none answered
    assert elapsed < 60  # without the flag: 7 x 120 s per request


def test_request_timeout_must_be_positive(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge") as server:
        assert main(["judge", "--data-dir", str(d), "--openai-api-base", server.url,
                     "--request-timeout", "0"]) == 2
    assert "--request-timeout must be > 0" in _one_error_line(capsys.readouterr().err)
    assert server.total == 0


# ---- OSErrors: one line with the path, exit 2, before any paid request ----
def test_judge_into_a_path_blocked_by_a_file_is_one_line_before_any_request(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    (d / "model_judgment").write_text("not a directory\n")
    with FakeOpenAI("judge") as server:
        assert main(["judge", "--data-dir", str(d), "--openai-api-base", server.url]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(d / "model_judgment") in line and server.total == 0


def test_a_judge_name_too_long_for_a_file_is_one_line_before_any_request(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    with FakeOpenAI("judge") as server:
        assert main(["judge", "--data-dir", str(d), "--openai-api-base", server.url,
                     "--judge-model", "j" * 300]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.endswith(f"{'j' * 300}: File name too long") and server.total == 0


def test_gen_api_model_name_too_long_is_one_line_before_any_request(tmp_path, capsys, main):
    with FakeOpenAI("echo") as server:
        assert main(["gen-api", "--model", "m" * 300, "--openai-api-base", server.url,
                     "--data-dir", str(tmp_path), "--question-end", "1"]) == 2
    assert "File name too long" in _one_error_line(capsys.readouterr().err)
    assert server.total == 0


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_is_one_line_with_the_path(tmp_path, capsys, main):
    """model_answer/m.jsonl is /dev/full: every write fails with ENOSPC, as on a full disk."""
    out = tmp_path / "model_answer" / "m.jsonl"
    out.parent.mkdir()
    out.symlink_to("/dev/full")
    with FakeOpenAI("echo") as server:
        assert main(["gen-api", "--model", "m", "--openai-api-base", server.url,
                     "--data-dir", str(tmp_path), "--question-end", "2"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line == f"mt-bench gen-api: error: {out}: No space left on device"
    # the first answer's two turns (the disk fills at its write), and perhaps the next turn
    # already on its way then (cancelled with the run)
    assert 2 <= server.total <= 3


# ---- report, plots ----
def test_report_refuses_a_malformed_answer_file_with_file_and_line(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    path = d / "model_answer" / f"{MODEL}.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = lines[2][:40]  # a line cut short
    path.write_text("\n".join(lines) + "\n")
    assert main(["report", "--data-dir", str(d), "--out", str(tmp_path / "r.html")]) == 2
    assert f"{path}:3: malformed record" in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r.html").exists()


def test_plots_draw_a_dollar_in_a_model_name_literally(tmp_path, capsys, main):
    """`$\\frac$` would be mathtext (and a parse error that crashed the plot)."""
    d = tmp_path / "d"
    (d / "model_judgment").mkdir(parents=True)
    name = "m$\\frac$x"
    src = CONF / "jxiw/model_judgment/gpt-4_single.jsonl"
    records = [json.loads(ln) for ln in src.read_text().splitlines()]
    model = records[0]["model"]
    kept = [{**r, "model": name} for r in records if r["model"] == model]
    (d / "model_judgment/gpt-4_single.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    assert main(["show", "--data-dir", str(d), "--plot", str(tmp_path / "radar.png")]) == 0
    assert (tmp_path / "radar.png").stat().st_size > 0 and name in capsys.readouterr().out


# ---- credentials in base URLs ----
def test_redaction_rule():
    url = f"https://{USER}:{PASSWORD}@proxy.example/v1?api-key=QUERY-SECRET&v=2"
    assert redact_url(url) == "https://bob:***@proxy.example/v1?api-key=***&v=***"
    text = f"refused {url} with Authorization: Basic {BASIC} and sk-abcdefghijkl"
    shown = redact(text, url_secrets(url))
    for secret in (PASSWORD, BASIC, "QUERY-SECRET", "sk-abcdefghijkl"):
        assert secret not in shown
    assert "proxy.example/v1" in shown


def _assert_hidden(tmp_path: Path, *texts: str) -> None:
    for secret in (PASSWORD, BASIC, "QUERY-SECRET"):
        for text in texts:
            assert secret not in text
        for f in tmp_path.rglob("*"):
            assert not f.is_file() or secret.encode() not in f.read_bytes()


def test_credentials_never_appear_in_error_or_retry_lines_or_files(tmp_path, capsys, main):
    d = answer_dir(tmp_path)
    # a request that fails 7 times (its "giving up" line names the server), then answers
    with FakeOpenAI("judge", faults=["503:0.01"] * 7) as server:
        url = server.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        code = main(["judge", "--data-dir", str(d), "--openai-api-base", url, "--first-n", "1"])
    out, err = capsys.readouterr()
    assert code == 1 and "giving up on a request to gpt-4 at http://bob:***@127.0.0.1" in err
    assert server.auth_headers[0] == f"Basic {BASIC}"  # what httpx derives from user:password@
    _assert_hidden(tmp_path, out, err)

    with FakeOpenAI("judge", faults=["401"]) as server:  # the fake echoes the header it got
        url = server.url.replace("http://", f"http://{USER}:{PASSWORD}@")
        assert main(["judge", "--data-dir", str(d), "--openai-api-base", url]) == 2
    out, err = capsys.readouterr()
    assert "HTTP 401" in _one_error_line(err) and "Basic ***" in err
    _assert_hidden(tmp_path, out, err)

    url = f"http://{USER}:{PASSWORD}@127.0.0.1:{_closed_port()}/v1?api-key=QUERY-SECRET"
    assert main(["judge", "--data-dir", str(d), "--openai-api-base", url]) == 2
    out, err = capsys.readouterr()
    assert "?api-key=***: connection refused" in _one_error_line(err)
    _assert_hidden(tmp_path, out, err)


def test_the_metric_settings_repr_hides_url_credentials():
    from mt_bench_task.integrations.metric import JudgeSettings

    shown = repr(JudgeSettings(base_url=f"http://{USER}:{PASSWORD}@h/v1?key=QUERY-SECRET"))
    assert PASSWORD not in shown and "QUERY-SECRET" not in shown and "h/v1" in shown


def test_nothing_is_left_behind_by_a_run_that_fails_before_writing(tmp_path, capsys, main):
    d = tmp_path / "d"
    (d / "model_answer").mkdir(parents=True)
    shutil.copy(CONF / "jxiw/model_answer" / f"{MODEL}.jsonl", d / "model_answer")
    with FakeOpenAI("judge", faults=["401"]) as server:
        assert main(["judge", "--data-dir", str(d), "--openai-api-base", server.url]) == 2
    assert not (d / "model_judgment").exists()  # the output opened early is removed again
