"""Pacing against three rate-limited servers, side by side: 429s and throughput vs the best possible.

Each server is tests/support/fake_ratelimit.py as a subprocess (OpenAI's model of a limit: a requests and
a tokens bucket refilling continuously over a window; a request costs its prompt characters / 4 +
max_tokens tokens; 429 with `retry-after` when it does not fit; a refused request still takes one
request from the limit). The clients are real `mt-bench judge` processes judging
tests/conformance/jxiw's mamba_0_5_dpo_ep1 and _ep3 (320 single-mode judgments, judge "gpt-4",
max_tokens 2048, `--parallel 32`), each into a fresh data dir:

  documented: the server sends x-ratelimit-* as OpenAI documents them, and enforces nothing else;
  quantized:  the same headers, but each per-window limit is also enforced per second
              (`--quantum 1`: "60,000 requests/minute may be enforced as 1,000 requests/second"),
              which the headers never show;
  shared:     the documented server and two client processes at once, as two jobs on one key
              (the headers show the shared bucket; neither process knows of the other).

Figures, from the server's log (GET /ratelog):
  429s = 429 answers / requests received, over the whole run and after the first window (before
  any answer nothing is known, so the start may burst into a short window by design);
  throughput = requests (or tokens) admitted per second after the first window / the limit's
  rate, for the limit that binds; the best possible is 100 %;
  vs best = the shortest span the server allows for the run's requests (a full bucket at once,
  only a second's worth where the limit is enforced per second, then the rate) / the span from
  the first request to the last admitted one (requests limit; the default settings bind it);
  lost = judgments without a record or with "$ERROR$" after the run (must be 0), exit = the
  processes' exit codes.

The window is 12 s instead of OpenAI's 60 s (120 requests, 10 a second; tokens do not bind) so
that each run takes under a minute; the client learns the refill rate from the headers, (limit - remaining) /
reset, and assumes no window.

Usage:
  python benchmarks/bench_ratelimit.py [--window 12 --rpm 120 --tpm 10000000 --latency 0.5
                                        --parallel 32] [--servers documented quantized shared]
                                        [--json OUT]
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
ANSWERS = [ROOT / "tests" / "conformance" / "jxiw" / "model_answer" / f"mamba_0_5_dpo_{m}.jsonl"
           for m in ("ep1", "ep3")]
PER_CLIENT = 80 * 2 * len(ANSWERS)  # single-mode judgments: questions x turns x models
SERVER = ROOT / "tests" / "support" / "fake_ratelimit.py"
SERVERS = {"documented": {"quantum": None, "clients": 1},
           "quantized": {"quantum": 1.0, "clients": 1},
           "shared": {"quantum": None, "clients": 2}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(args: argparse.Namespace, quantum: float | None) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    cmd = [sys.executable, str(SERVER), "--port", str(port), "--rpm", str(args.rpm), "--tpm",
           str(args.tpm), "--window", str(args.window), "--latency", str(args.latency)]
    if quantum:
        cmd += ["--quantum", str(quantum)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=SERVER.parent)
    assert proc.stdout is not None
    proc.stdout.readline()  # "listening on ..."
    return proc, f"http://127.0.0.1:{port}"


def _judge_cmd(data_dir: Path, base: str, parallel: int) -> list[str]:
    return [sys.executable, "-m", "mt_bench_task.cli.main", "judge", "--data-dir", str(data_dir),
            "--judge-model", "gpt-4", "--openai-api-base", base + "/v1",
            "--parallel", str(parallel)]


def _lost(data_dir: Path) -> tuple[int, int]:
    """(records without $ERROR$, judgments lost) in the judgment file of one data dir."""
    path = data_dir / "model_judgment" / "gpt-4_single.jsonl"
    good = 0
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip() and "$ERROR$" not in json.loads(line)["judgment"]:
                good += 1
    return good, PER_CLIENT - good


def one_run(args: argparse.Namespace, name: str) -> dict:
    setting = SERVERS[name]
    proc, base = _start_server(args, setting["quantum"])
    tmp = Path(tempfile.mkdtemp(prefix="bench-ratelimit-"))
    env = {**os.environ, "OPENAI_API_KEY": "sk-bench", "PYTHONPATH": str(ROOT)}
    try:
        dirs = []
        for i in range(setting["clients"]):
            d = tmp / f"client{i}"
            (d / "model_answer").mkdir(parents=True)
            for a in ANSWERS:
                shutil.copy(a, d / "model_answer")
            dirs.append(d)
        t0 = time.monotonic()
        clients = [subprocess.Popen(_judge_cmd(d, base, args.parallel), env=env, cwd=ROOT,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                   for d in dirs]
        codes = []
        for c in clients:
            _, err = c.communicate()
            codes.append(c.returncode)
            if c.returncode:
                print(err[-2000:], file=sys.stderr)
        wall = time.monotonic() - t0
        with urllib.request.urlopen(base + "/ratelog") as r:
            log = json.load(r)
        lost = sum(_lost(d)[1] for d in dirs)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"server": name, "clients": setting["clients"], "wall_s": round(wall, 1),
            "judgments": PER_CLIENT * len(dirs), "lost": lost, "exit": codes,
            **figures(log, setting["quantum"])}


def figures(log: dict, quantum: float | None = None) -> dict:
    window, limits, rows = log["window"], log["limits"], log["log"]
    start = rows[0][0] + window
    after = [r for r in rows if r[0] >= start]
    ok = [r for r in after if r[1] == 200]
    span = (ok[-1][0] - start) if ok else 0.0
    share_req = len(ok) / span / (limits["requests"] / window) if span else 0.0
    share_tok = sum(r[2] for r in ok) / span / (limits["tokens"] / window) if span else 0.0
    n429 = sum(1 for r in after if r[1] == 429)
    total429 = sum(1 for r in rows if r[1] == 429)
    # the whole run against the best possible: a full bucket at once (a second's worth where the
    # limit is enforced per second), then the limit's rate, for the requests limit
    rate = limits["requests"] / window
    burst = min(limits["requests"], rate * quantum) if quantum else limits["requests"]
    n_ok = sum(1 for r in rows if r[1] == 200)
    last_ok = max((r[0] for r in rows if r[1] == 200), default=rows[0][0])
    best_span = max(0.0, (n_ok - burst) / rate)
    span_all = last_ok - rows[0][0]
    return {"requests": len(rows), "429_total": total429,
            "span_s": round(span_all, 1), "best_span_s": round(best_span, 1),
            "vs_best": round(best_span / span_all, 3) if span_all else 1.0,
            "429_share": round(total429 / len(rows), 4) if rows else 0.0,
            "requests_after_first_window": len(after), "429_after_first_window": n429,
            "429_share_after_first_window": round(n429 / len(after), 4) if after else 0.0,
            "throughput_share": round(max(share_req, share_tok), 3),
            "binding": "tokens" if share_tok >= share_req else "requests"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=12.0, help="limit window, s (OpenAI: 60)")
    ap.add_argument("--rpm", type=int, default=120, help="requests per window")
    ap.add_argument("--tpm", type=int, default=10_000_000, help="tokens per window")
    ap.add_argument("--latency", type=float, default=0.5, help="seconds per answer")
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--servers", nargs="+", choices=sorted(SERVERS), default=list(SERVERS))
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    results = []
    for name in args.servers:
        results.append(one_run(args, name))
        print(json.dumps(results[-1]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "runs": results},
                                              indent=1))


if __name__ == "__main__":
    main()
