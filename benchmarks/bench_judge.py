"""Judging speed and resume: FastChat's gen_judgment vs `mt-bench judge`, against one fake API.

One run, one machine, the same answers for both: tests/conformance/jxiw's mamba_0_5_dpo_ep1
(1 model x 80 questions = 160 single-mode judgments, judge "gpt-4"), the same question file,
references and judge prompts (this package's FastChat copies), and the same fake OpenAI server
(tests/support/fake_openai.py, started as a subprocess: `--responder judge`, a fixed latency per call).
The judge responder's rating is a pure function of the request's messages, so equal scores
(and equal user prompts) mean both tools sent the same prompts.

  FastChat: fschat 0.2.36's own `python -m fastchat.llm_judge.gen_judgment --judge-model gpt-4
            --mode single --parallel 8`, with openai==0.28, from a separate venv (default
            /tmp/fschat-judge-venv, made by --setup-fastchat), cwd = a temp dir laid out as
            FastChat expects (data/mt_bench/{question.jsonl, reference_answer/gpt-4.jsonl,
            model_answer/}, data/judge_prompts.jsonl), "\\n" on stdin for its "Press Enter",
            OPENAI_API_BASE=<fake>/v1, OPENAI_API_KEY=sk-bench. Nothing is shimmed unless the
            import fails; then the script says so (see _FASTCHAT_RUNNER).
  ours:     `mt-bench judge --data-dir <same layout> --judge-model gpt-4 --mode single
            --parallel 8 --openai-api-base <fake>/v1` (this venv).

Scenarios, each timed wall-clock around the whole command (process start-up included):
  (1) no faults;
  (2) every Nth chat request (default 10th, retries included, arrival order) answered
      429 with Retry-After: 1 (`--fault-every 10 --fault-kind 429:1` on the fake server);
      FastChat sleeps 10 s after each, ours honours Retry-After;
  (3) a second identical run on the output of (1): chat requests counted at the server
      (GET /stats). FastChat re-sends all 160 and appends duplicate rows; ours should send 0.

Usage:
  python benchmarks/bench_judge.py --setup-fastchat        # once: make the FastChat venv
  python benchmarks/bench_judge.py [--latency 1] [--parallel 8] [--json OUT]
  python benchmarks/bench_judge.py --latency 0.2            # a quicker dry check
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "mt_bench_task" / "data" / "mt_bench" / "data"
ANSWERS = ROOT / "tests" / "conformance" / "jxiw" / "model_answer" / "mamba_0_5_dpo_ep1.jsonl"
FAKE = ROOT / "tests" / "support" / "fake_openai.py"
FSCHAT_VENV = Path("/tmp/fschat-judge-venv")
FSCHAT_PACKAGES = ["torch==2.13.0", "transformers<4.50", "fschat==0.2.36", "openai==0.28",
                   "anthropic", "psutil", "accelerate"]
API_KEY = "sk-bench"

# Runs gen_judgment as `python -m` would, after checking the import. If a module is missing it
# is stubbed and named on stderr as "SHIMMED: <module>" (the benchmark reports those lines).
_FASTCHAT_RUNNER = r'''
import importlib, runpy, sys, types
for name in ("anthropic",):  # imported by llm_judge.common, unused for an OpenAI judge
    try:
        importlib.import_module(name)
    except ImportError:
        sys.modules[name] = types.ModuleType(name)
        print(f"SHIMMED: {name}", file=sys.stderr)
import openai
assert openai.version.VERSION.startswith("0."), openai.version.VERSION
sys.argv = ["gen_judgment"] + sys.argv[1:]
runpy.run_module("fastchat.llm_judge.gen_judgment", run_name="__main__", alter_sys=True)
'''


def setup_fastchat(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", *FSCHAT_PACKAGES], check=True)


def layout(root: Path) -> Path:
    """FastChat's llm_judge data layout under `root`; returns root/data/mt_bench."""
    bench = root / "data" / "mt_bench"
    (bench / "reference_answer").mkdir(parents=True)
    (bench / "model_answer").mkdir()
    shutil.copy(DATA / "question.jsonl", bench / "question.jsonl")
    shutil.copy(DATA / "reference_answer_gpt-4.jsonl", bench / "reference_answer" / "gpt-4.jsonl")
    shutil.copy(DATA / "judge_prompts.jsonl", root / "data" / "judge_prompts.jsonl")
    shutil.copy(ANSWERS, bench / "model_answer" / ANSWERS.name)
    return bench


class FakeServer:
    """tests/support/fake_openai.py in its own process (so neither tool shares our GIL)."""

    def __init__(self, latency: float, fault_every: int = 0, fault_kind: str = "429:1"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [sys.executable, str(FAKE), "--port", str(self.port), "--latency", str(latency),
               "--responder", "judge"]
        if fault_every:
            cmd += ["--fault-every", str(fault_every), "--fault-kind", fault_kind]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if "listening" not in line:
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.url = f"http://127.0.0.1:{self.port}/v1"

    def stats(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return json.load(r)

    def __enter__(self) -> FakeServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def run_fastchat(python: str, root: Path, url: str, parallel: int, log: Path) -> float:
    env = {**os.environ, "OPENAI_API_BASE": url, "OPENAI_API_KEY": API_KEY}
    cmd = [python, "-c", _FASTCHAT_RUNNER, "--judge-model", "gpt-4", "--mode", "single",
           "--parallel", str(parallel)]
    t0 = time.perf_counter()
    with open(log, "a") as out:
        subprocess.run(cmd, cwd=root, env=env, input="\n", text=True, stdout=out,
                       stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - t0


def run_ours(root: Path, url: str, parallel: int, log: Path) -> float:
    env = {**os.environ, "OPENAI_API_KEY": API_KEY}
    cmd = [sys.executable, "-m", "mt_bench_task.cli.main", "judge",
           "--data-dir", str(root / "data" / "mt_bench"),
           "--judge-file", str(root / "data" / "judge_prompts.jsonl"),
           "--judge-model", "gpt-4", "--mode", "single", "--parallel", str(parallel),
           "--openai-api-base", url]
    t0 = time.perf_counter()
    with open(log, "a") as out:
        subprocess.run(cmd, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                       stderr=subprocess.STDOUT, check=True)
    return time.perf_counter() - t0


def judgments(root: Path) -> list[dict]:
    path = root / "data" / "mt_bench" / "model_judgment" / "gpt-4_single.jsonl"
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


def by_key(rows: list[dict]) -> dict[tuple, dict]:
    return {(r["question_id"], r["turn"], r["model"], r["judge"][1]): r for r in rows}


def shimmed(log: Path) -> list[str]:
    return sorted({ln.split(":", 1)[1].strip() for ln in log.read_text().splitlines()
                   if ln.startswith("SHIMMED:")})


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--latency", type=float, default=1.0, help="fake server seconds per call")
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--fault-every", type=int, default=10)
    ap.add_argument("--fault-kind", default="429:1")
    ap.add_argument("--fschat-python", default=str(FSCHAT_VENV / "bin" / "python"))
    ap.add_argument("--setup-fastchat", action="store_true",
                    help=f"create {FSCHAT_VENV} with {' '.join(FSCHAT_PACKAGES)} and exit")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs and logs")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()
    if args.setup_fastchat:
        setup_fastchat(FSCHAT_VENV)
        return 0

    tmp = Path(tempfile.mkdtemp(prefix="bench_judge_"))
    dirs = {name: tmp / name for name in ("fc_plain", "ours_plain", "fc_fault", "ours_fault")}
    for d in dirs.values():
        layout(d)
    fc_log, ours_log = tmp / "fastchat.log", tmp / "ours.log"
    fig: dict = {"latency_s": args.latency, "parallel": args.parallel,
                 "fault": f"every {args.fault_every}th call {args.fault_kind}"}

    def timed(name: str, fn, root: Path, fault_every: int = 0) -> tuple[float, dict, object]:
        with FakeServer(args.latency, fault_every, args.fault_kind) as srv:
            seconds = fn(root, srv.url)
            first = srv.stats()
            again = None
            if not fault_every:  # (3): a second identical run on the same output
                fn(root, srv.url)
                again = srv.stats()["total"] - first["total"]
        print(f"  {name}: {seconds:.1f} s, {first['total']} chat calls, "
              f"faults {first['faults_injected']}"
              + (f"; second run: {again} calls" if again is not None else ""), flush=True)
        return seconds, first, again

    def fc(root: Path, url: str) -> float:
        return run_fastchat(args.fschat_python, root, url, args.parallel, fc_log)

    def ours(root: Path, url: str) -> float:
        return run_ours(root, url, args.parallel, ours_log)

    print(f"latency {args.latency} s/call, --parallel {args.parallel}, 160 judgments; "
          f"logs in {tmp}", flush=True)
    fc_t, fc_s, fc_again = timed("FastChat, no faults", fc, dirs["fc_plain"])
    ours_t, ours_s, ours_again = timed("ours, no faults", ours, dirs["ours_plain"])
    fcf_t, fcf_s, _ = timed("FastChat, faults", fc, dirs["fc_fault"], args.fault_every)
    oursf_t, oursf_s, _ = timed("ours, faults", ours, dirs["ours_fault"], args.fault_every)

    fc_rows, ours_rows = judgments(dirs["fc_plain"]), judgments(dirs["ours_plain"])
    fc_first = by_key(fc_rows[: len(fc_rows) // 2])  # rows of FastChat's first run
    ours_map = by_key(ours_rows)
    common = fc_first.keys() & ours_map.keys()
    same_score = sum(fc_first[k]["score"] == ours_map[k]["score"] for k in common)
    same_prompt = sum(fc_first[k]["user_prompt"] == ours_map[k]["user_prompt"] for k in common)
    same_fault = sum(by_key(judgments(dirs["fc_fault"])).get(k, {}).get("score")
                     == by_key(judgments(dirs["ours_fault"])).get(k, {}).get("score")
                     for k in common)
    fig.update({
        "no_faults": {"fastchat_s": fc_t, "ours_s": ours_t, "ratio": fc_t / ours_t,
                      "fastchat_calls": fc_s["total"], "ours_calls": ours_s["total"]},
        "faults": {"fastchat_s": fcf_t, "ours_s": oursf_t, "ratio": fcf_t / oursf_t,
                   "fastchat_calls": fcf_s["total"], "ours_calls": oursf_s["total"],
                   "fastchat_faults": fcf_s["faults_injected"],
                   "ours_faults": oursf_s["faults_injected"]},
        "second_run": {"fastchat_calls": fc_again, "ours_calls": ours_again,
                       "fastchat_rows_after": len(fc_rows), "ours_rows_after": len(ours_rows)},
        "scores": {"compared": len(common), "equal_scores": same_score,
                   "equal_user_prompts": same_prompt, "equal_scores_fault_runs": same_fault,
                   "fastchat_errors": sum(r["judgment"] == "$ERROR$" for r in fc_rows),
                   "ours_errors": sum(r["judgment"] == "$ERROR$" for r in ours_rows)},
        "fastchat_shimmed": shimmed(fc_log),
    })
    nf, f, sr, sc = fig["no_faults"], fig["faults"], fig["second_run"], fig["scores"]
    print()
    print(f"(1) no faults:        FastChat {nf['fastchat_s']:6.1f} s   ours {nf['ours_s']:6.1f} s"
          f"   FastChat/ours {nf['ratio']:.2f}x   "
          f"(calls {nf['fastchat_calls']} / {nf['ours_calls']})")
    print(f"(2) {fig['fault']}: FastChat {f['fastchat_s']:6.1f} s   ours {f['ours_s']:6.1f} s"
          f"   FastChat/ours {f['ratio']:.2f}x   (calls {f['fastchat_calls']} / {f['ours_calls']},"
          f" faults {f['fastchat_faults']} / {f['ours_faults']})")
    print(f"(3) second run:       FastChat {sr['fastchat_calls']} calls "
          f"({sr['fastchat_rows_after']} rows after)   ours {sr['ours_calls']} calls "
          f"({sr['ours_rows_after']} rows after)")
    print(f"scores: {sc['equal_scores']}/{sc['compared']} equal, user prompts "
          f"{sc['equal_user_prompts']}/{sc['compared']} equal (fault runs: "
          f"{sc['equal_scores_fault_runs']}/{sc['compared']} equal scores); $ERROR$ rows "
          f"FastChat {sc['fastchat_errors']}, ours {sc['ours_errors']}")
    print(f"FastChat shimmed: {', '.join(fig['fastchat_shimmed']) or 'nothing'}")
    if args.json:
        Path(args.json).write_text(json.dumps(fig, indent=2) + "\n")
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
