"""Pacing by x-ratelimit-* headers vs retries alone, against a server enforcing RPM and TPM.

One run, one machine: tests/support/fake_ratelimit.py as a subprocess (OpenAI's model: a requests and a
tokens bucket refilling continuously over a window; a request costs its prompt characters / 4 +
max_tokens tokens; 429 with `retry-after` when it does not fit; x-ratelimit-* headers on every
answer), and `run_judging` in this process judging tests/conformance/jxiw's mamba_0_5_dpo_ep1
(160 single-mode judgments, judge "gpt-4", max_tokens 2048) twice into fresh data dirs:

  paced:      the client as shipped (pacing by the headers, clients/pacing.py);
  retry-only: the same client with pacing switched off (what main did: bounded retries that
              honour Retry-After).

Figures, from the server's log (GET /ratelog), counting only what happened after the first
window (the start, when nothing is known yet, may burst by design):
  429 share = 429 answers / requests received;
  throughput = tokens (or requests) admitted per second / the limit's rate, for the limit that
  binds (the larger of the two shares);
  wall = seconds for the whole run.

The window is shorter than OpenAI's 60 s (default 20 s) so that a run spans several windows in a
few minutes; the client learns the refill rate from the headers ((limit - remaining) / reset),
so nothing in it assumes 60 s.

Usage:
  python benchmarks/bench_ratelimit.py [--window 20 --rpm 30 --tpm 100000 --latency 1
                                        --parallel 32] [--json OUT]
"""
from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ANSWERS = ROOT / "tests" / "conformance" / "jxiw" / "model_answer" / "mamba_0_5_dpo_ep1.jsonl"
TESTS = ROOT / "tests"  # the fake runs as `python -m support.fake_ratelimit` from here
sys.path.insert(0, str(ROOT))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_server(args: argparse.Namespace) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "support.fake_ratelimit", "--port", str(port), "--rpm",
                             str(args.rpm), "--tpm", str(args.tpm), "--window", str(args.window),
                             "--latency", str(args.latency)], stdout=subprocess.PIPE, text=True,
                            cwd=TESTS)
    assert proc.stdout is not None
    proc.stdout.readline()  # "listening on ..."
    return proc, f"http://127.0.0.1:{port}"


class _NoPacing:
    """The retry-only behaviour: never waits, learns nothing."""

    waited = 0.0

    async def acquire(self, tokens: int) -> None:
        return None

    def done(self, tokens: int, headers: object) -> None:
        return None


def one_run(args: argparse.Namespace, paced: bool) -> dict:
    from mt_bench_task.clients.openai_client import OpenAIChatClient
    from mt_bench_task.judging.run import JudgeRun, run_judging

    proc, base = _start_server(args)
    tmp = Path(tempfile.mkdtemp(prefix="bench-ratelimit-"))
    try:
        (tmp / "model_answer").mkdir()
        shutil.copy(ANSWERS, tmp / "model_answer")
        client = OpenAIChatClient(base + "/v1", "sk-bench", max_retries=30, backoff_max=60)
        if not paced:
            client.pacer = _NoPacing()  # type: ignore[assignment]
        t0 = time.monotonic()
        summary = run_judging(JudgeRun(tmp, parallel=args.parallel), client=client)
        wall = time.monotonic() - t0
        with urllib.request.urlopen(base + "/ratelog") as r:
            log = json.load(r)
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return {"mode": "paced" if paced else "retry-only", "wall_s": round(wall, 1),
            "judgments": summary.sent, "failed": summary.failed, **figures(log)}


def figures(log: dict) -> dict:
    window, limits, rows = log["window"], log["limits"], log["log"]
    start = rows[0][0] + window
    after = [r for r in rows if r[0] >= start]
    ok = [r for r in after if r[1] == 200]
    span = (ok[-1][0] - start) if ok else 0.0
    share_req = len(ok) / span / (limits["requests"] / window) if span else 0.0
    share_tok = sum(r[2] for r in ok) / span / (limits["tokens"] / window) if span else 0.0
    n429 = sum(1 for r in after if r[1] == 429)
    return {"requests": len(rows), "requests_after_first_window": len(after),
            "429_after_first_window": n429,
            "429_share": round(n429 / len(after), 4) if after else 0.0,
            "429_total": sum(1 for r in rows if r[1] == 429),
            "throughput_share": round(max(share_req, share_tok), 3),
            "binding": "tokens" if share_tok >= share_req else "requests"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=20.0, help="limit window, s (OpenAI: 60)")
    ap.add_argument("--rpm", type=int, default=30, help="requests per window")
    ap.add_argument("--tpm", type=int, default=100_000, help="tokens per window")
    ap.add_argument("--latency", type=float, default=1.0, help="seconds per answer")
    ap.add_argument("--parallel", type=int, default=32)
    ap.add_argument("--json", default=None, help="write the results here")
    args = ap.parse_args()
    results = [one_run(args, paced=True), one_run(args, paced=False)]
    for r in results:
        print(json.dumps(r))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": vars(args), "runs": results},
                                              indent=1))


if __name__ == "__main__":
    main()
