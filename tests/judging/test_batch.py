"""`--batch`: the Batch API against a real local server (tests/support/fake_batch.py)."""
from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from support.answer_dirs import answer_dir
from support.cli import CliResult
from support.fake_batch import FakeBatchServer
from support.fake_openai import FakeOpenAI, Gate

from mt_bench_task.clients.openai_client import OpenAIChatClient
from mt_bench_task.judging.batch import state_path
from mt_bench_task.judging.execute import SendOptions
from mt_bench_task.judging.run import JudgeRun, run_judging

CONF = Path(__file__).parents[1] / "conformance"
MODEL = "mamba_0_5_dpo_ep1"
SECRET = "sk-test-SECRET-batch-1234"


def _lines(path: Path) -> list[dict]:
    """Records without their timestamps (the one field that differs between two runs)."""
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    for r in rows:
        r.pop("tstamp")
    return rows


def _client(server: FakeOpenAI) -> OpenAIChatClient:
    return OpenAIChatClient(server.url, SECRET, backoff_base=0.01, backoff_max=0.05)


def _batch_run(d: Path, batch_wait: bool = True, **kw) -> JudgeRun:
    return JudgeRun(d, send=SendOptions(batch=True, batch_poll_interval=0.01, batch_wait=batch_wait), **kw)


@pytest.mark.parametrize("mode", ["single", "pairwise-all"])
def test_batch_records_equal_the_synchronous_runs(tmp_path, mode):
    models = (MODEL, "mamba_0_5_dpo_ep3") if mode != "single" else (MODEL,)
    sync_dir, batch_dir = answer_dir(tmp_path, *models, name="sync"), answer_dir(tmp_path, *models, name="batch")
    with FakeBatchServer("judge", shuffle_seed=3) as server:
        server.served_model = {"gpt-4": "gpt-4-0613"}
        sync = run_judging(JudgeRun(sync_dir, mode=mode, first_n=10, send=SendOptions(parallel=4)),
                           client=_client(server))
        sync_bodies = [json.loads(b, object_pairs_hook=list) for b in server.raw_requests]
        batch = run_judging(_batch_run(batch_dir, mode=mode, first_n=10), client=_client(server))
        assert server.uploads == 1 and server.created == 1
        lines = [json.loads(x, object_pairs_hook=list)
                 for x in server.files["file-0001"].decode().splitlines()]
    name = "gpt-4_single.jsonl" if mode == "single" else "gpt-4_pair.jsonl"
    sync_recs = _lines(sync_dir / "model_judgment" / name)
    batch_recs = _lines(batch_dir / "model_judgment" / name)
    key = lambda r: json.dumps(r, sort_keys=True)  # noqa: E731
    assert sorted(map(key, batch_recs)) == sorted(map(key, sync_recs))
    assert len(batch_recs) == sync.sent == batch.sent == (20 if mode == "single" else 20)
    assert all(r["served_model"] == "gpt-4-0613" for r in batch_recs)
    # the bodies are the synchronous requests' JSON, keys in the same order
    batch_bodies = [dict(x)["body"] for x in lines]
    assert sorted(map(json.dumps, batch_bodies)) == sorted(map(json.dumps, sync_bodies))
    assert {dict(x)["url"] for x in lines} == {"/v1/chat/completions"}
    assert len({dict(x)["custom_id"] for x in lines}) == len(lines)  # one id per request
    assert batch.served_models == ["gpt-4-0613"] and batch.batch_ids == ["batch_0001"]
    assert not state_path(batch_dir / "model_judgment" / name).exists()  # collected: state gone


def test_failed_lines_are_errors_then_resent_alone_and_a_finished_dir_sends_nothing(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    failing = {"n": 0}

    def errs(cid: str) -> bool:
        return failing["n"] == 0 and cid.startswith(("mtb-q81-t1-", "mtb-q82-t2-"))

    with FakeBatchServer("judge", error_ids=errs) as server:
        first = run_judging(_batch_run(d, first_n=5), client=_client(server))
        assert (first.sent, first.failed, first.ok) == (10, 2, False)
        assert sum(r["judgment"] == "$ERROR$" for r in _lines(out)) == 2
        failing["n"] = 1
        second = run_judging(_batch_run(d, first_n=5), client=_client(server))
        assert (second.sent, second.failed, second.ok) == (2, 0, True)
        second_input = server.batches["batch_0002"]["_lines"]
        assert sorted(x["custom_id"][:10] for x in second_input) == ["mtb-q81-t1", "mtb-q82-t2"]
        third = run_judging(_batch_run(d, first_n=5), client=_client(server))
        assert (server.uploads, server.created) == (2, 2)  # nothing sent for a finished dir
    assert third.sent == 0
    recs = _lines(out)
    assert len(recs) == 10 and not any(r["judgment"] == "$ERROR$" for r in recs)


def test_status_400_lines_are_failures_too(tmp_path):
    d = answer_dir(tmp_path)
    with FakeBatchServer("judge", error_ids=lambda c: c.startswith("mtb-q81-t1-"),
                         error_kind="400") as server:
        s = run_judging(_batch_run(d, first_n=2), client=_client(server))
    assert (s.sent, s.failed) == (4, 1)


@pytest.mark.parametrize("final", ["expired", "cancelled", "failed"])
def test_an_unfinished_batch_keeps_what_finished_and_the_next_run_sends_the_rest(tmp_path, final):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    with FakeBatchServer("judge", final=final) as server:
        s = run_judging(_batch_run(d, first_n=6), client=_client(server))
        kept = 0 if final == "failed" else 6
        assert (s.sent, s.unfinished, s.ok) == (kept, 12 - kept, False)
        server.final = "completed"
        again = run_judging(_batch_run(d, first_n=6), client=_client(server))
        assert server.batches["batch_0002"]["request_counts"]["total"] == 12 - kept
    assert again.ok and again.sent == 12 - kept and len(_lines(out)) == 12


def test_no_wait_submits_then_a_later_run_collects_without_a_second_upload(tmp_path):
    d = answer_dir(tmp_path)
    with FakeBatchServer("judge", hold=True) as server:
        s = run_judging(_batch_run(d, first_n=3, batch_wait=False), client=_client(server))
        assert s.batch_pending and s.ok and s.batch_ids == ["batch_0001"] and s.sent == 0
        assert "batch_0001" in s.end_lines()[0]
        server.release()
        done = run_judging(_batch_run(d, first_n=3), client=_client(server))
        assert (server.uploads, server.created) == (1, 1)
    assert done.sent == 6 and not done.batch_pending


def test_a_kill_between_create_and_save_finds_the_batch_instead_of_making_another(tmp_path):
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    with FakeBatchServer("judge", hold=True) as server:
        run_judging(_batch_run(d, first_n=2, batch_wait=False), client=_client(server))
        state = json.loads(state_path(out).read_text())
        state["batches"][0]["batch_id"] = None  # as if killed right after batches.create
        state_path(out).write_text(json.dumps(state))
        server.release()
        s = run_judging(_batch_run(d, first_n=2), client=_client(server))
    assert (server.uploads, server.created, s.sent) == (1, 1, 4)


def test_large_plans_are_split_into_several_batches(tmp_path):
    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.core.judge_spec import judge_spec
    from mt_bench_task.judging import batch as core_batch
    from mt_bench_task.judging.batch_queue import split
    from mt_bench_task.judging.call import run_sync
    d = answer_dir(tmp_path)
    job = _batch_run(d, first_n=5).job(load_bench(data_dir=d))
    todo, out = job.plan().todo, job.output
    assert out is not None
    with FakeBatchServer("judge") as server:
        backend = _client(server).batch_backend()
        res = run_sync(lambda: core_batch.judge_batch(out, todo, judge_spec(), "single", backend,
                                                      poll_interval=0.01, max_requests=4,
                                                      progress=False))
    assert (server.uploads, server.created) == (3, 3) and len(res.records) == 10
    assert [b["request_counts"]["total"] for b in server.batches.values()] == [4, 4, 2]
    ids = list("abcde")
    one = dict.fromkeys(ids, 10)  # bytes (9 + a newline), and tokens
    assert split(ids, one, one, 10, 25, None) == [["a", "b"], ["c", "d"], ["e"]]  # bytes bind
    assert split(ids, one, one, 10, 10**6, 30) == [["a", "b", "c"], ["d", "e"]]  # the queue


def test_calibrate_batch_judges_the_reference_answers_in_one_batch(tmp_path):
    from mt_bench_task.judging.execute import SendOptions
    from mt_bench_task.outputs.calibration import CalibrationRun, run_calibration

    with FakeBatchServer("judge") as server:
        run = CalibrationRun(tmp_path, "gpt-4", models=("alpaca-13b",),
                             send=SendOptions(batch=True, batch_poll_interval=0.01))
        s = run_calibration(run, client=_client(server))
        again = run_calibration(run, client=_client(server))
    assert (server.uploads, server.created) == (1, 1)
    assert s.sent == 160 and s.ok and s.stats is not None and s.stats["n"] > 0
    assert again.sent == 0 and again.stats == s.stats


def test_batch_with_a_local_judge_is_a_one_line_error(mt_bench, tmp_path):
    r = mt_bench("judge", "--data-dir", answer_dir(tmp_path), "--judge-model", "default", "--batch")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "--batch needs an OpenAI-compatible judge" in r.stderr


def test_ctrl_c_while_polling_exits_130_and_the_next_run_collects_the_same_batch(
        mt_bench, tmp_path, monkeypatch):
    """Ctrl-C (a SIGINT to this process) while the run waits on its second poll's answer: exit
    130, the batch id kept; the next run collects that batch, no second upload. (tests/e2e sends
    it to a real process.)"""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    gate = Gate("retrieve", 2, hold=False, action=lambda: os.kill(os.getpid(), signal.SIGINT))
    with FakeBatchServer("judge", hold=True, gate=gate) as server:
        args = ("judge", "--data-dir", d, "--openai-api-base", server.url, "--batch",
                "--batch-poll-interval", "0.01", "--first-n", "3")
        first = mt_bench(*args)
        assert first.returncode == 130 and "interrupted" in first.stderr, first.stderr
        assert "Traceback" not in first.stderr and gate.reached.is_set() and not out.exists()
        assert json.loads(state_path(out).read_text())["batches"][0]["batch_id"] == "batch_0001"
        server.release()
        again = mt_bench(*args)
    assert again.returncode == 0, again.stderr
    assert (server.uploads, server.created) == (1, 1) and len(_lines(out)) == 6


def test_result_lines_are_matched_by_id_and_unreadable_ones_are_skipped():
    from mt_bench_task.judging.batch_lines import parse_results

    ok = {"custom_id": "b", "error": None, "response": {"status_code": 200, "body": {
        "model": "gpt-4-0613", "usage": {"prompt_tokens": 3, "completion_tokens": 2},
        "choices": [{"message": {"content": "Rating: [[7]]"}}]}}}
    err = {"custom_id": "a", "response": None, "error": {"message": "boom"}}
    got = parse_results(("\n".join([json.dumps(ok), '{"torn', json.dumps(err), "[]"]) + "\n")
                        .encode())
    assert set(got) == {"a", "b"} and got["a"].failed and got["a"].text == "$ERROR$"
    assert (got["b"].text, got["b"].model, got["b"].prompt_tokens) == ("Rating: [[7]]",
                                                                       "gpt-4-0613", 3)


def _judged_in_one_batch(r: CliResult, server: FakeBatchServer, out: Path) -> None:
    """`mt-bench run --batch` on questions 81-82: one upload, one batch, four records, the
    tables, and the key nowhere."""
    assert r.returncode == 0, r.stderr
    assert (server.uploads, server.created) == (1, 1)
    assert sorted((x["question_id"], x["turn"]) for x in _lines(out)) == [
        (81, 1), (81, 2), (82, 1), (82, 2)]
    assert "########## Average ##########" in r.stdout and "failures: 0 of 4" in r.stderr
    assert SECRET not in r.stderr + r.stdout + out.read_text()


def _no_wait_then_collect(cli: Callable[..., CliResult], d: Path,
                          before_release: Callable[[], None] = lambda: None) -> None:
    """--no-wait submits and prints the batch id, writes nothing; once the batch ends, the next
    run uploads nothing more and shows the scores."""
    out = d / "model_judgment/gpt-4_single.jsonl"
    with FakeBatchServer("judge", hold=True) as server:
        first = cli(d, server.url, "--no-wait")
        assert first.returncode == 0, first.stderr
        assert first.stdout.strip().splitlines()[-1] == "batch_0001"
        assert "Average" not in first.stdout and not out.exists()
        before_release()
        server.release()
        second = cli(d, server.url)
        assert (server.uploads, server.created) == (1, 1)
    assert second.returncode == 0, second.stderr
    assert len(_lines(out)) == 4 and "########## Average ##########" in second.stdout


def test_run_with_batch_judges_in_one_batch_and_no_wait_collects_later(mt_bench, tmp_path,
                                                                       monkeypatch):
    """`mt-bench run --batch` on answers already there (generation resumes, no model loads): the
    judgments go in one batch, the tables come out; with --no-wait the first run submits and
    prints the batch id, the second uploads nothing and shows the scores."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)

    def cli(d: Path, url: str, *extra: str) -> CliResult:
        return mt_bench("run", "--data-dir", d, "--model-id", MODEL, "--question-end", "2",
                        "--judge-model", "gpt-4", "--openai-api-base", url, "--batch",
                        "--batch-poll-interval", "0.01", *extra)

    d = answer_dir(tmp_path)
    out = d / "model_judgment/gpt-4_single.jsonl"
    with FakeBatchServer("judge") as server:
        r = cli(d, server.url)
    _judged_in_one_batch(r, server, out)
    _no_wait_then_collect(cli, answer_dir(tmp_path, name="no_wait"))


@pytest.mark.slow  # the embedded model generates; the test above runs the same on answers there
def test_run_with_batch_generates_then_judges_in_one_batch_and_no_wait_collects_later(
        mt_bench, tmp_path, default_model_dir, monkeypatch):
    """`mt-bench run --batch`: the embedded model answers 2 questions, the
    judgments go in one batch, the tables come out; with --no-wait the first run submits and
    prints the batch id, the second generates nothing, uploads nothing and shows the scores."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)

    def cli(d: Path, url: str, *extra: str) -> CliResult:
        return mt_bench("run", "--data-dir", d, "--question-end", "2", "--max-new-token", "8",
                        "--judge-model", "gpt-4", "--openai-api-base", url, "--batch",
                        "--batch-poll-interval", "0.05", *extra)

    d = tmp_path / "run"
    out = d / "model_judgment/gpt-4_single.jsonl"
    answers = d / "model_answer/smollm2-135m-instruct.jsonl"
    with FakeBatchServer("judge") as server:
        r = cli(d, server.url)
    _judged_in_one_batch(r, server, out)
    assert [json.loads(x)["question_id"] for x in answers.read_text().splitlines()] == [81, 82]

    d2 = tmp_path / "no_wait"
    answers2 = d2 / "model_answer/smollm2-135m-instruct.jsonl"
    made: list[int] = []  # the answers' mtime once the --no-wait run has generated them
    _no_wait_then_collect(cli, d2, lambda: made.append(answers2.stat().st_mtime_ns))
    assert answers2.stat().st_mtime_ns == made[0]  # the second run generated nothing


def test_a_reasoning_judge_in_batch_is_asked_again_adapted_in_a_second_batch(tmp_path):
    """A reasoning model refuses FastChat's max_tokens and temperature 0 line by line: those
    refusals are no judgments; the jobs go again with max_completion_tokens and no temperature
    (one new batch per refused parameter at most), at the Batch API's price, not one by one."""
    d = answer_dir(tmp_path)
    out = d / "model_judgment/o3_single.jsonl"
    with FakeBatchServer("judge", reasoning=True) as server:
        s = run_judging(_batch_run(d, first_n=3, judge_model="o3"), client=_client(server))
        bodies = [json.loads(x)["body"] for f in server.files.values()
                  for x in f.decode().splitlines() if x.startswith('{"custom_id"')]
    assert s.ok and s.sent == 6 and s.failed == 0 and not s.unfinished
    # round 1: FastChat's body, refused for max_tokens; round 2: max_completion_tokens, refused
    # for temperature 0; round 3: neither, answered
    assert server.created == 3 and server.rejected_params == {"max_tokens": 6, "temperature": 6}
    assert [sorted(b) for b in bodies[::6]] == [
        ["max_tokens", "messages", "model", "n", "temperature"],
        ["max_completion_tokens", "messages", "model", "n", "temperature"],
        ["max_completion_tokens", "messages", "model", "n"]]
    assert all(b["max_completion_tokens"] == 2048 for b in bodies[6:])
    assert len(s.adaptations) == 2 and "max_completion_tokens=2048" in s.adaptations[0]
    rows = _lines(out)
    assert len(rows) == 6 and all(r["score"] != -1 and "$ERROR$" not in r["judgment"] for r in rows)
    assert not state_path(out).exists()
