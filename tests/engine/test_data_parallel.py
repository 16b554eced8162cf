"""Data parallel generation (engine/data_parallel.py): the sharding, the merge into one answer file
in the bench's order and the resume after a kill, through the engine seam with an engine that
answers from its request alone (so any split of the questions must give the same file), the
replicas run in this process. The real processes: the slow test at the end (hf engine); vLLM's
CPU build: tests/vllm_engine/."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from mt_bench_task.core.bench import Bench
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.types import Question
from mt_bench_task.core.workspace import open_workspace
from mt_bench_task.engine import data_parallel, driver
from mt_bench_task.engine.base import GenRequest, GenResult
from mt_bench_task.engine.config import EngineOptions, GenerationConfig
from mt_bench_task.engine.data_parallel import Shard, ShardRun, fold_shards, plan_shards
from mt_bench_task.engine.driver import AnswerSink, Work, drive
from mt_bench_task.engine.generate import generate_answers

QUESTIONS = 7  # MT-bench's first 7: an odd count, so the shards differ in size


class RequestEngine:
    """Answers each turn with a text made of its request (question, choice, turn, the messages
    so far), two per step; `kill_after`: raise KeyboardInterrupt once that many turns are done
    (a Ctrl-C at a point the test controls)."""

    name = "fake"
    stop_token_ids = frozenset({2})

    def __init__(self, kill_after: int | None = None) -> None:
        self.waiting: list[GenRequest] = []
        self.done, self.kill_after = 0, kill_after

    @property
    def busy(self) -> bool:
        return bool(self.waiting)

    def submit(self, requests: Sequence[GenRequest]) -> None:
        self.waiting += requests

    def step(self) -> list[GenResult]:
        out = []
        for r in self.waiting[:2]:
            if self.kill_after is not None and self.done >= self.kill_after:
                raise KeyboardInterrupt
            self.done += 1
            out.append(GenResult(r, f"q{r.question_id} c{r.choice} t{r.turn} "
                                    f"after {len(r.messages)} messages", 4))
        del self.waiting[:len(out)]
        return out

    def close(self) -> None:
        pass


class FakeBackend:
    """A registry.Backend on RequestEngine; data parallel through run_data_parallel with the
    replicas run one after another in this process. `kill`: shard index -> turns before Ctrl-C."""

    name = "fake"

    def __init__(self, kill: dict[int, int] | None = None) -> None:
        self.kill = kill or {}
        self.asked: list[list[object]] = []  # question ids each engine was given
        self.shards: list[Shard] = []

    def check(self, cfg: GenerationConfig) -> None:
        pass

    def check_judge(self, options: EngineOptions) -> None:
        pass

    def generate(self, cfg: GenerationConfig, model_path: str, pending: list[Question], out: Path,
                 bench: Bench, shard: int | None = None) -> tuple[int, float, float]:
        if cfg.data_parallel_size > 1:
            return data_parallel.run_data_parallel(cfg, model_path, pending, out, bench, 1,
                                                   launch=self.launch)
        self.asked.append([q.question_id for q in pending])
        engine = RequestEngine(self.kill.get(shard, None) if shard is not None else None)
        sink = AnswerSink(out, len(pending), "fake", order=[q.key for q in bench.questions])
        try:
            drive(engine, Work(engine, pending, bench.temperature, cfg.num_choices,
                               cfg.max_new_token, cfg.model_id), sink)
        finally:
            sink.close()
        return sink.tokens, 1.0, 0.5

    def launch(self, cfg: GenerationConfig, model_path: str, bench: Bench,
               shards: Sequence[Shard]) -> list[ShardRun]:
        assert cfg.data_parallel_size == 1  # each replica is one engine
        self.shards = list(shards)
        runs = []
        for s in shards:
            questions = [q for q in bench.questions if q.key in s.questions]
            runs.append(ShardRun(*self.generate(cfg, model_path, questions, s.path, bench, s.index)))
        return runs


@pytest.fixture(autouse=True)
def no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the CPU-only case; GPU groups: plan_shards


def _run(tmp_path: Path, backend: FakeBackend, dp: int, name: str = "m") -> Path:
    cfg = GenerationConfig(model_path=str(tmp_path), model_id=name, data_dir=tmp_path,
                           question_end=QUESTIONS, num_choices=2, data_parallel_size=dp)
    generate_answers(cfg, open_workspace(data_dir=tmp_path), backend=backend)  # type: ignore[arg-type]
    return cfg.output_path


def _rows(path: Path) -> list[tuple[object, object]]:
    """(question id, choices) per line: what must not depend on the split (ids and times do)."""
    return [(r["question_id"], r["choices"]) for r in map(json.loads, path.read_text().splitlines())]


def test_two_engines_write_the_same_file_as_one(tmp_path: Path) -> None:
    one = _run(tmp_path, FakeBackend(), 1, "one")
    backend = FakeBackend()
    two = _run(tmp_path, backend, 2, "two")
    assert _rows(two) == _rows(one) and len(_rows(one)) == QUESTIONS
    assert [r[0] for r in _rows(two)] == [81, 82, 83, 84, 85, 86, 87]  # the bench's order
    assert backend.asked == [[81, 83, 85, 87], [82, 84, 86]]  # dealt round-robin
    assert [s.path.name for s in backend.shards] == ["two.jsonl.shard-0-of-2", "two.jsonl.shard-1-of-2"]
    assert not list(tmp_path.glob("model_answer/*.shard-*"))  # merged and removed


def test_more_engines_than_questions_start_one_per_question(tmp_path: Path) -> None:
    backend = FakeBackend()
    cfg = GenerationConfig(model_path=str(tmp_path), data_dir=tmp_path, question_end=2,
                           data_parallel_size=4)
    generate_answers(cfg, open_workspace(data_dir=tmp_path), backend=backend)  # type: ignore[arg-type]
    assert backend.asked == [[81], [82]] and len(backend.shards) == 2


def test_a_killed_run_keeps_each_shards_answers_and_the_rerun_asks_only_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "SYNC_STEPS", 1)  # answers reach the file after every step
    want = _rows(_run(tmp_path, FakeBackend(), 1, "one"))
    # shard 1 (82, 84, 86): its 6 first turns, then both choices' turn 2 of 82, then Ctrl-C
    killed = FakeBackend(kill={1: 8})
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, killed, 2)
    out = tmp_path / "model_answer" / "m.jsonl"
    kept = [r[0] for r in _rows(out)]
    assert kept == [81, 82, 83, 85, 87] and not list(out.parent.glob("*.shard-*"))
    rerun = FakeBackend()
    _run(tmp_path, rerun, 2)
    assert sorted(q for ids in rerun.asked for q in ids) == sorted(set(range(81, 88)) - set(kept))
    assert _rows(out) == want


def test_shard_files_left_by_a_killed_process_are_resumed_torn_line_dropped(tmp_path: Path) -> None:
    one = _run(tmp_path, FakeBackend(), 1, "one")
    lines = one.read_text().splitlines()
    out = tmp_path / "model_answer" / "m.jsonl"
    (out.parent / "m.jsonl.shard-1-of-3").write_text(lines[4] + "\n" + lines[1] + "\n" + lines[2][:30])
    (out.parent / "m.jsonl.shard-0-of-3").write_text(lines[0] + "\n")
    backend = FakeBackend()
    _run(tmp_path, backend, 2)  # another N than the killed run's: the shards are merged first
    assert sorted(q for ids in backend.asked for q in ids) == [83, 84, 86, 87]
    assert _rows(out) == _rows(one)


def test_fold_shards_keeps_the_bytes_and_the_last_answer_wins(tmp_path: Path) -> None:
    out = tmp_path / "a.jsonl"
    out.write_text('{"question_id": 82, "choices": "old"}\n')
    (tmp_path / "a.jsonl.shard-0-of-2").write_text('{"question_id": 82,  "choices": "new"}\n')
    (tmp_path / "a.jsonl.shard-1-of-2").write_text('{"question_id": 81, "choices": "x"}\n')
    assert fold_shards(out) == 2
    assert out.read_text() == ('{"question_id": 81, "choices": "x"}\n'
                               '{"question_id": 82,  "choices": "new"}\n')
    assert fold_shards(out) == 0 and list(tmp_path.iterdir()) == [out]


def _qs(n: int) -> list[Question]:
    return [Question(question_id=i, category="math", turns=["t"]) for i in range(n)]


def test_each_engine_gets_its_own_gpu_group_or_its_own_cores(tmp_path: Path) -> None:
    gpus = ["0", "1", "2", "3", "4", "5"]
    shards = plan_shards(tmp_path / "a.jsonl", _qs(9), 3, 2, gpus, [0, 1])
    assert [(s.gpus, s.cpus, s.questions) for s in shards] == [
        ("0,1", (), (0, 3, 6)), ("2,3", (), (1, 4, 7)), ("4,5", (), (2, 5, 8))]
    with pytest.raises(DataError, match="needs 8 GPUs; 6 visible"):
        plan_shards(tmp_path / "a.jsonl", _qs(9), 2, 4, gpus, [])
    cpu = plan_shards(tmp_path / "a.jsonl", _qs(9), 2, 1, [], [0, 1, 2, 3])
    assert [(s.gpus, s.cpus) for s in cpu] == [(None, (0, 2)), (None, (1, 3))]
    assert [s.cpus for s in plan_shards(tmp_path / "a.jsonl", _qs(9), 3, 1, [], [0, 1])] == [()] * 3


def test_on_the_hf_engine_the_flag_is_its_accelerate_processes(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from mt_bench_task.engine.config import GenerationStats
    from mt_bench_task.engine.hf import launch
    from mt_bench_task.engine.hf.backend import HF

    launched = []

    def fake_relaunch(cfg: GenerationConfig, model_path: str, bench: Bench) -> GenerationStats:
        launched.append((cfg.num_processes, cfg.data_parallel_size))
        return GenerationStats(1, 5, 2.0, 1, "", 1.0, "hf")

    monkeypatch.setattr(launch, "relaunch", fake_relaunch)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    bench = open_workspace(data_dir=tmp_path).bench
    for flags in ({"data_parallel_size": 3}, {"num_processes": 3},
                  {"num_processes": 3, "data_parallel_size": 3}):
        cfg = GenerationConfig(engine="hf", **flags)  # type: ignore[arg-type]
        HF.check(cfg)
        assert HF.generate(cfg, "/m", [], tmp_path / "a.jsonl", bench) == (5, 2.0, 1.0)
    assert launched == [(3, 1)] * 3
    with pytest.raises(DataError, match="one setting"):
        HF.check(GenerationConfig(num_processes=2, data_parallel_size=3))


@pytest.mark.slow
def test_two_replica_processes_write_what_one_engine_writes(tmp_path: Path,
                                                           default_model_dir: Path) -> None:
    """The real launcher: two `gen_worker --shard` processes on the hf engine (greedy: math)."""
    from mt_bench_task.engine.hf.backend import HF

    ws = open_workspace(data_dir=tmp_path)
    base = GenerationConfig(model_path=str(default_model_dir), data_dir=tmp_path, engine="hf",
                            question_begin=40, question_end=43, max_new_token=12)
    generate_answers(base, ws, backend=HF)
    pending = ws.bench.select(40, 43)
    out = tmp_path / "two.jsonl"
    data_parallel.run_data_parallel(
        GenerationConfig(**{**base.__dict__, "answer_file": out, "data_parallel_size": 2}),
        str(default_model_dir), pending, out, ws.bench, 1)
    assert _rows(out) == _rows(base.output_path) and not list(tmp_path.glob("*.shard-*"))


def test_the_engine_given_is_not_chosen_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`run` resolves --engine once (generation, then its local judge): handed a backend,
    generate_answers never resolves 'auto' itself (which looks for vLLM, then a GPU)."""
    import importlib.util

    real, looked = importlib.util.find_spec, []
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: looked.append(name) or real(name, *a))
    backend = FakeBackend()
    cfg = GenerationConfig(model_path=str(tmp_path), data_dir=tmp_path, question_end=1)
    assert cfg.engine == "auto"
    generate_answers(cfg, open_workspace(data_dir=tmp_path), backend=backend)  # type: ignore[arg-type]
    assert backend.asked == [[81]] and "vllm" not in looked


def test_a_replica_stopped_by_a_user_error_says_it_in_one_line(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from mt_bench_task.engine import gen_worker

    ws = open_workspace(data_dir=tmp_path)
    out, model = tmp_path / "a.jsonl", tmp_path / "empty-model"
    model.mkdir()
    shard = plan_shards(out, ws.bench.select(0, 1), 1, 1, [], [])[0]
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(data_parallel.shard_spec(
        GenerationConfig(engine="vllm", data_dir=tmp_path), str(model), ws.bench, shard,
        tmp_path / "stats.json")))
    assert gen_worker.main(["--shard", str(spec)]) == 2  # the tokenizer is loaded before vLLM
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "its tokenizer does not load" in err and "Traceback" not in err
    assert not shard.path.exists()
