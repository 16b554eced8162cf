"""Generation throughput on one GPU for a Llama-2-7B-shaped model (random bf16 weights).

No weights can be downloaded on the lent GPU machine, so the model is built from a LlamaConfig
(hidden 4096, 32 layers, 32 heads, intermediate 11008, vocab 32000) with random weights, and the
work is done at the token level: prompts are random token ids of MT-bench-like turn-1 lengths
(uniform 80-150 tokens), EOS is disabled so every sequence generates exactly the asked number of
tokens, and decoding is greedy. One process, one model, every configuration:

  (a) batch-1 `generate` loop (FastChat's gen_model_answer algorithm), a few prompts
  (b) naive left-padded batch `generate`, dynamic cache
  (c) batch `generate` with cache_implementation="static" (transformers then torch.compiles the
      decode step, mode "reduce-overhead"); (c0) the same with disable_compile=True
  (d) continuous batching `model.generate_batch` (paged attention, bounded KV blocks);
      (d-graph) the same with CUDA graphs forced on
  (e) our code path: `mt_bench_task.engine.hf.scheduler.ContinuousBatcher` at the token level (no
      tokenizer); (sim) the MT-bench-shaped run through it, turn 2 queued when turn 1 ends.
      The scheduler has no static-cache path: e-static / sim-static now run the same as e / sim.

Every configuration is warmed up first (compile / CUDA-graph capture time is reported separately,
as the first call's wall time; for (b), (c), (e) the warm-up is the full run itself), then timed
(median of --reps) with torch.cuda.synchronize()
around each call. tok/s = generated tokens / seconds. Usage:

  python benchmarks/bench_generate_gpu.py                  # on the GPU machine
  python benchmarks/bench_generate_gpu.py --tiny           # CPU smoke test with a tiny model
  python benchmarks/bench_generate_gpu.py --configs a,b,d  # a subset
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # our package without installing it

SEVEN_B = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
               num_attention_heads=32, num_key_value_heads=32, vocab_size=32000)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=4, vocab_size=32000)
PAD = 0


def build_model(tiny: bool, device: str, dtype: torch.dtype) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(**(TINY if tiny else SEVEN_B), max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=None, pad_token_id=PAD,
                      attn_implementation="sdpa")
    torch.manual_seed(0)
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(old)
    model.eval()
    gc = model.generation_config
    gc.eos_token_id, gc.pad_token_id, gc.bos_token_id = None, PAD, 1
    gc.do_sample = False
    return model


def make_prompts(n: int, lo: int, hi: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    lens = torch.randint(lo, hi + 1, (n,), generator=g).tolist()
    return [torch.randint(3, 32000, (L,), generator=g).tolist() for L in lens]


def left_pad(prompts: list[list[int]], device: str) -> dict[str, torch.Tensor]:
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, width - len(p):] = torch.tensor(p)
        mask[i, width - len(p):] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    sync()
    t0 = time.perf_counter()
    n = fn()
    sync()
    return time.perf_counter() - t0, n


# ---- the configurations: each returns the number of generated tokens ----
def run_generate(model: Any, prompts: list[list[int]], new: int, **kw: Any) -> int:
    enc = left_pad(prompts, str(model.device))
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=new, do_sample=False, pad_token_id=PAD, **kw)
    got = out.shape[1] - enc["input_ids"].shape[1]
    assert got == new, f"asked {new} new tokens, got {got}"
    return out.shape[0] * got


def run_batch1(model: Any, prompts: list[list[int]], new: int) -> int:
    return sum(run_generate(model, [p], new) for p in prompts)


def run_cb(model: Any, prompts: list[list[int]], new: int, num_blocks: int,
           **cb_kw: Any) -> int:
    from transformers import GenerationConfig
    from transformers.generation.configuration_utils import ContinuousBatchingConfig

    gen = GenerationConfig(max_new_tokens=new, do_sample=False, eos_token_id=None,
                           pad_token_id=PAD)
    cb = ContinuousBatchingConfig(num_blocks=num_blocks, max_batch_tokens=4096, **cb_kw)
    # no inference_mode here: the manager's own thread would meet inference tensors made in ours
    try:
        res = model.generate_batch(inputs=prompts, generation_config=gen,
                                   continuous_batching_config=cb)
    finally:  # a failed run can leave the paged attention set, which breaks plain generate()
        if "paged" in str(model.config._attn_implementation):
            model.set_attn_implementation("sdpa")
    outs = list(res.values())
    assert len(outs) == len(prompts), f"{len(outs)} results for {len(prompts)} prompts"
    errors = [o.error for o in outs if o.error]
    assert not errors, errors[:3]
    counts = [len(o.generated_tokens) for o in outs]
    assert all(c == new for c in counts), f"token counts {sorted(set(counts))}, asked {new}"
    return sum(counts)


def run_ours(model: Any, prompts: list[list[int]], new: int, static: bool | None = False) -> int:
    """`mt-bench gen`'s decode path: the prompts through one ContinuousBatcher (no EOS: every row
    generates `new` tokens). `static` is kept for the config names; the scheduler has no static
    cache (it ignores it)."""
    from mt_bench_task.engine.hf.batch_requests import Request
    from mt_bench_task.engine.hf.scheduler import ContinuousBatcher

    batcher = ContinuousBatcher(model, len(prompts), set(), 0)
    for p in prompts:
        batcher.add(Request(p, 0.0, new))
    total = 0
    while batcher.busy:
        for fin in batcher.step():
            assert fin.token_ids is not None, "a RuntimeError ended a row"
            total += len(fin.token_ids)
    assert total == new * len(prompts), f"{total} tokens, asked {new * len(prompts)}"
    return total


def run_sim(model: Any, prompts: list[list[int]], new: int, batch: int, static: bool) -> int:
    """An MT-bench-shaped `mt-bench gen` run through the scheduler: at most `batch` rows in
    flight, two turns per prompt; a prompt's turn 2 (turn 1's prompt + its answer + a new user
    message of 30-80 tokens) is queued as soon as its turn 1 ends."""
    from mt_bench_task.engine.hf.batch_requests import Request
    from mt_bench_task.engine.hf.scheduler import ContinuousBatcher

    g = torch.Generator().manual_seed(2)
    batcher = ContinuousBatcher(model, batch, set(), 0)
    for i, p in enumerate(prompts):
        batcher.add(Request(p, 0.0, new, owner=(i, 1)))
    total = 0
    while batcher.busy:
        for fin in batcher.step():
            assert fin.token_ids is not None, "a RuntimeError ended a row"
            total += len(fin.token_ids)
            i, turn = fin.request.owner
            if turn == 1:
                user = torch.randint(3, 32000, (int(torch.randint(30, 81, (1,), generator=g)),),
                                     generator=g).tolist()
                batcher.add(Request(prompts[i] + fin.token_ids + user, 0.0, new, priority=True,
                                    owner=(i, 2)))
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny model (CPU smoke test)")
    ap.add_argument("--configs", default="a,b,e,c0,c,d,d-graph",
                    help="comma list of a,b,e,e-static,sim,sim-static,c0,c,d,d-graph "
                    "(run in the order given)")
    ap.add_argument("--batch", type=int, default=80)
    ap.add_argument("--new", type=int, default=256, help="new tokens per sequence, batched runs")
    ap.add_argument("--b1-prompts", type=int, default=4)
    ap.add_argument("--b1-new", type=int, default=128)
    ap.add_argument("--sim-batch", type=int, default=20,
                    help="batch size of the sim configs (mt-bench gen's default 32 makes 20s)")
    ap.add_argument("--reps", type=int, default=2, help="timed repetitions of batched runs")
    ap.add_argument("--json", default=os.environ.get("OUT", "") and
                    os.path.join(os.environ["OUT"], "bench_generate_gpu.json"))
    args = ap.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16
    import transformers
    dev_name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"device {dev_name}, torch {torch.__version__}, transformers {transformers.__version__}",
          flush=True)
    t0 = time.perf_counter()
    model = build_model(args.tiny, device, dtype)
    sync()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params / 1e9:.2f} B params, {dtype}, built in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    prompts = make_prompts(args.batch, 80, 150, seed=1)
    b1 = prompts[:args.b1_prompts]
    lens = [len(p) for p in prompts]
    print(f"{len(prompts)} prompts, {min(lens)}-{max(lens)} tokens (mean "
          f"{statistics.mean(lens):.0f}), {args.new} new tokens each; batch-1: {len(b1)} x "
          f"{args.b1_new}", flush=True)
    # KV blocks for continuous batching: every sequence at once, plus a little slack
    block = 256
    per_seq = -(-(max(lens) + args.new) // block)
    num_blocks = len(prompts) * per_seq + 8

    runs: dict[str, tuple[str, Callable[[], int], Callable[[], int]]] = {
        "a": ("batch-1 generate loop (FastChat algorithm)",
              lambda: run_batch1(model, b1[:1], 32), lambda: run_batch1(model, b1, args.b1_new)),
        "b": (f"naive left-padded generate, batch {len(prompts)}, dynamic cache",
              lambda: run_generate(model, prompts, args.new),
              lambda: run_generate(model, prompts, args.new)),
        "e": (f"ours: ContinuousBatcher, batch {len(prompts)}, dynamic cache",
              lambda: run_ours(model, prompts, args.new), lambda: run_ours(model, prompts, args.new)),
        "e-static": (f"ours: ContinuousBatcher (no static cache), batch {len(prompts)}, static cache + compile "
                     "(the CUDA default)",
                     lambda: run_ours(model, prompts, args.new, True),
                     lambda: run_ours(model, prompts, args.new, True)),
        # end-to-end, nothing warmed but CUDA itself: compile time is inside the timed run
        "sim": (f"ours, MT-bench-shaped: {len(prompts)} q x 2 turns, batches of {args.sim_batch}, "
                "dynamic cache",
                lambda: run_generate(model, prompts[:1], 8),
                lambda: run_sim(model, prompts, args.new, args.sim_batch, False)),
        "sim-static": (f"ours, MT-bench-shaped: {len(prompts)} q x 2 turns, batches of "
                       f"{args.sim_batch}, static cache + compile, compiles included",
                       lambda: run_generate(model, prompts[:1], 8),
                       lambda: run_sim(model, prompts, args.new, args.sim_batch, True)),
        "c0": (f"generate, static cache, no compile, batch {len(prompts)}",
               lambda: run_generate(model, prompts, args.new, cache_implementation="static",
                                    disable_compile=True),
               lambda: run_generate(model, prompts, args.new, cache_implementation="static",
                                    disable_compile=True)),
        # same shapes in warm-up and timed runs: the compiled graph is reused, not recompiled
        "c": (f"generate, static cache + torch.compile, batch {len(prompts)}",
              lambda: run_generate(model, prompts, args.new, cache_implementation="static"),
              lambda: run_generate(model, prompts, args.new, cache_implementation="static")),
        "d": (f"continuous batching generate_batch, {len(prompts)} requests, "
              f"{num_blocks} KV blocks",
              lambda: run_cb(model, prompts[:8], 8, num_blocks),
              lambda: run_cb(model, prompts, args.new, num_blocks)),
        "d-graph": ("continuous batching, CUDA graphs on",
                    lambda: run_cb(model, prompts[:8], 8, num_blocks, use_cuda_graph=True),
                    lambda: run_cb(model, prompts, args.new, num_blocks, use_cuda_graph=True)),
    }
    results: dict[str, dict[str, Any]] = {}
    for key in [c.strip() for c in args.configs.split(",") if c.strip()]:
        desc, warm, run = runs[key]
        if device == "cuda":
            torch.cuda.empty_cache()
        print(f"\n[{key}] {desc}", flush=True)
        try:
            w_s, _ = timed(warm)
            print(f"  warm-up {w_s:.1f} s", flush=True)
            reps = 1 if key in ("a", "sim", "sim-static") else args.reps
            times, tokens = [], 0
            for _ in range(reps):
                s, tokens = timed(run)
                times.append(s)
                print(f"  {tokens} tokens in {s:.2f} s = {tokens / s:.1f} tok/s", flush=True)
            med = statistics.median(times)
            results[key] = {"desc": desc, "warmup_s": w_s, "times_s": times, "tokens": tokens,
                            "tok_s": tokens / med}
        except Exception as e:  # keep measuring the other configurations
            print(f"  FAILED: {type(e).__name__}: {e}", flush=True)
            results[key] = {"desc": desc, "error": f"{type(e).__name__}: {e}"}
        if device == "cuda":
            print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB",
                  flush=True)
        if args.json:  # after every configuration: a run cut by a time limit keeps what it has
            Path(args.json).write_text(json.dumps({"device": dev_name, "results": results},
                                                  indent=1))

    base_a = results.get("a", {}).get("tok_s")
    base_b = results.get("b", {}).get("tok_s")
    print(f"\ndevice {dev_name}; tok/s = generated tokens / median seconds")
    print("| config | description | warm-up s | seconds | tokens | tok/s | vs (a) | vs (b) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for key, r in results.items():
        if "error" in r:
            print(f"| ({key}) | {r['desc']} | FAILED: {r['error'][:80]} | | | | | |")
            continue
        va = f"{r['tok_s'] / base_a:.1f}x" if base_a else ""
        vb = f"{r['tok_s'] / base_b:.2f}x" if base_b else ""
        secs = " / ".join(f"{t:.2f}" for t in r["times_s"])
        print(f"| ({key}) | {r['desc']} | {r['warmup_s']:.1f} | {secs} | {r['tokens']} | "
              f"{r['tok_s']:.0f} | {va} | {vb} |")


if __name__ == "__main__":
    main()
