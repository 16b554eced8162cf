"""The vllm engine's cost: `mt-bench gen --engine vllm` vs vLLM driven directly, same requests.

Runs in a venv with vLLM (the CPU build here: .ci/run's recipe); bench_generate.py calls it with
`--vllm-python` for its vLLM column. One engine start (timed), one untimed warm-up pass (vLLM
compiles shapes on first use), then rounds in the order seam, direct, direct, seam, ...
(each kind first as often as the other):
  seam:   generate_answers(GenerationConfig(engine="vllm")) on that engine (driver, seam,
          answer file written and sorted, as the CLI does);
  direct: the same conversations straight on vLLM's LLMEngine step loop: the same prompt ids,
          SamplingParams, turn 2 added when its turn 1 ends with the decoded turn-1 answer.
Prints one JSON line: start-up seconds, and per run its generated tokens, seconds and this
process's CPU seconds.

Usage: python benchmarks/bench_vllm.py BEGIN END MAX_NEW_TOKEN [ROUNDS]
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")


def direct(engine, questions, temperature, max_new: int) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    """The conversations on vLLM's own step loop, no seam: (generated tokens, seconds)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    from mt_bench_task.engine.base import GenRequest, clean_output, prompt_ids
    from mt_bench_task.engine.vllm.engine import sampling_kwargs

    llm, tok, stop = engine.llm, engine.tok, engine.stop_token_ids
    history = {q.question_id: [] for q in questions}
    by_id = {q.question_id: q for q in questions}

    def add(qid: int) -> None:
        q, msgs = by_id[qid], history[qid]
        turn = len(msgs) // 2
        msgs.append(("user", q.turns[turn]))
        r = GenRequest(qid, turn, 0, tuple(msgs), temperature(q.category), 0, max_new, stop,
                       turn + 1 == len(q.turns))
        llm.add_request(f"d{qid}-{turn}", TokensPrompt(prompt_token_ids=prompt_ids(tok, r)),
                        SamplingParams(**sampling_kwargs(r, engine.generation_config),
                                       output_kind=RequestOutputKind.FINAL_ONLY))

    start, tokens = time.perf_counter(), 0
    for qid in history:
        add(qid)
    while llm.has_unfinished_requests():
        for out in llm.step():
            if out.finished:
                qid = int(out.request_id[1:].split("-")[0])
                text, n = clean_output(tok, out.outputs[0].token_ids, stop)
                tokens += n
                history[qid].append(("assistant", text))
                if len(history[qid]) < 2 * len(by_id[qid].turns):
                    add(qid)
    return tokens, time.perf_counter() - start


def main() -> None:
    begin, end, max_new = map(int, sys.argv[1:4])
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    from dataclasses import replace

    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.core.workspace import Workspace
    from mt_bench_task.engine.generate import GenerationConfig, generate_answers
    from mt_bench_task.engine.models import default_model_dir
    from mt_bench_task.engine.vllm.engine import VllmEngine

    bench = load_bench()
    cfg = GenerationConfig(engine="vllm", question_begin=begin, question_end=end,
                           max_new_token=max_new, max_model_len=2048)
    t0 = time.perf_counter()
    engine = VllmEngine.start(cfg.load_options, str(default_model_dir()))
    startup = time.perf_counter() - t0
    close, VllmEngine.start = engine.close, classmethod(lambda cls, c, p: engine)  # type: ignore[method-assign,assignment]
    engine.close = lambda: None  # type: ignore[method-assign]
    runs = []
    direct(engine, bench.select(begin, end), bench.temperature, max_new)  # warm-up, not timed
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(rounds):
            for kind in ("seam", "direct") if i % 2 == 0 else ("direct", "seam"):
                cpu = time.process_time()
                if kind == "seam":
                    seam_dir = Path(tmp) / f"seam{i}"
                    s = generate_answers(replace(cfg, data_dir=seam_dir), Workspace(bench, seam_dir))
                    n, sec = s.tokens, s.seconds
                else:
                    n, sec = direct(engine, bench.select(begin, end), bench.temperature, max_new)
                # this process's CPU time: the seam's own work (vLLM computes in its engine
                # process); the wall time also carries the engine's run-to-run variation
                runs.append({"kind": kind, "generated": n, "seconds": sec,
                             "cpu_seconds": time.process_time() - cpu})
    close()
    print(json.dumps({"startup": startup, "runs": runs, "load": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
