"""Generation at MT-bench's real answer lengths: static per-temperature batches vs the scheduler.

All 80 questions, both turns, one choice, the embedded SmolLM2-135M-Instruct in bf16 on CPU
(--model for another, on CUDA when there is one). Each
answer is forced to the length of the official gpt-3.5-turbo answer to the same question and turn
(mt_bench_task/data/official_answers/gpt-3.5-turbo.jsonl, re-tokenized with the model's
tokenizer, capped at --max-new-token): EOS is suppressed before that length and ends the row
there, so both configurations generate exactly the same number of tokens. Turn 2's prompt holds
the model's own (forced-length) turn-1 answer, as in a real run. Seconds exclude model loading.

  static: the previous `mt-bench gen` algorithm: questions grouped by temperature, even batches of
          at most --batch-size sorted by prompt length, one left-padded generate() per batch and
          turn (turn 2 waits for the whole batch's turn 1).
  cont:   mt_bench_task.engine.hf.scheduler.ContinuousBatcher (the hf engine): all temperatures in
          one batch of at most --batch-size rows, finished rows refilled, turn 2 queued as soon as
          its turn 1 ends.
  vllm:   the vllm engine's LLMEngine (its CPU build here), in the venv of --vllm-python: every
          request at once (vLLM schedules them), turn 2 added as soon as its turn 1 ends, the
          length forced with SamplingParams(min_tokens = max_tokens = the target). Its start-up
          (engine process, compile, KV cache) is timed apart.

--choices N answers every question N times (FastChat's --num-choices; choice i samples from
seed i), N times the work through the same batch: peak memory should not grow with it.
Each configuration runs in its own process (peak RSS = that process's ru_maxrss).
Usage: python benchmarks/bench_realistic.py [--batch-size 32] [--max-new-token 1024]
       [--questions 80] [--choices 1] [--configs static,cont[,vllm]] [--vllm-python PATH]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any


def _targets(tok: Any, max_new: int) -> dict[int, list[int]]:
    from mt_bench_task.core.bench import official_answers_dir

    path = official_answers_dir() / "gpt-3.5-turbo.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    return {r["question_id"]: [max(1, min(max_new, len(tok(t, add_special_tokens=False)
                                                       ["input_ids"])))
                               for t in r["choices"][0]["turns"]] for r in rows}


class _NoEos:
    """The model as the scheduler sees it, with EOS never chosen (rows end at their budget)."""

    def __init__(self, model: Any, eos: int) -> None:
        self.model, self.eos = model, eos
        self.config, self.device = model.config, model.device
        self.generation_config = model.generation_config

    def __call__(self, **kw: Any) -> Any:
        out = self.model(**kw)
        out.logits[..., self.eos] = float("-inf")
        return out


def _run_cont(model: Any, tok: Any, questions: list, targets: dict, batch: int,
              choices: int) -> int:
    import torch

    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.engine.base import clean_output, prompt_ids
    from mt_bench_task.engine.driver import Conversation
    from mt_bench_task.engine.hf.batch_requests import Request
    from mt_bench_task.engine.hf.scheduler import ContinuousBatcher

    batcher = ContinuousBatcher(_NoEos(model, tok.eos_token_id), batch, {tok.eos_token_id},
                                tok.pad_token_id)
    stop = frozenset({tok.eos_token_id})

    def request(conv: Conversation, generator: Any, after: Any) -> Request:
        g = conv.next_request(targets[conv.question.question_id][len(conv.turns)], stop)
        return Request(prompt_ids(tok, g), g.temperature, g.max_new_tokens, generator=generator,
                       priority=g.turn > 0, owner=(conv, generator), after=after,
                       keep_cache=not g.final)

    first = []
    for q in questions:
        for choice in range(choices):
            conv = Conversation(q, choice, load_bench().temperature(q.category))
            first.append(request(conv, torch.Generator(model.device).manual_seed(choice), None))
    for r in sorted(first, key=lambda r: len(r.prompt_ids)):
        batcher.add(r)
    tokens = 0
    while batcher.busy:
        for fin in batcher.step():
            conv, generator = fin.request.owner
            tokens += len(fin.token_ids)
            conv.record(clean_output(tok, fin.token_ids, batcher.stop_ids)[0])
            if not conv.done:
                batcher.add(request(conv, generator, fin.request))
    return tokens


def _run_vllm(engine: Any, questions: list, targets: dict, choices: int) -> int:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.engine.base import clean_output, prompt_ids
    from mt_bench_task.engine.driver import Conversation
    from mt_bench_task.engine.vllm.engine import sampling_kwargs

    llm, tok, stop = engine.llm, engine.tok, engine.stop_token_ids
    convs: dict[str, Conversation] = {}

    def add(conv: Conversation) -> None:
        g = conv.next_request(targets[conv.question.question_id][len(conv.turns)], stop)
        key = f"{g.question_id}-{g.choice}-{g.turn}"
        convs[key] = conv
        params = SamplingParams(**sampling_kwargs(g, engine.generation_config),
                                min_tokens=g.max_new_tokens, output_kind=RequestOutputKind.FINAL_ONLY)
        llm.add_request(key, TokensPrompt(prompt_token_ids=prompt_ids(tok, g)), params)

    temperature = load_bench().temperature
    for q in questions:
        for choice in range(choices):
            add(Conversation(q, choice, temperature(q.category)))
    tokens = 0
    while llm.has_unfinished_requests():
        for out in llm.step():
            if out.finished:
                conv = convs.pop(out.request_id)
                tokens += len(out.outputs[0].token_ids)
                conv.record(clean_output(tok, out.outputs[0].token_ids, stop)[0])
                if not conv.done:
                    add(conv)
    return tokens


def _run_static(model: Any, tok: Any, questions: list, targets: dict, batch: int,
                choices: int) -> int:
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.engine.base import clean_output as _clean_output

    temperature_for = load_bench().temperature

    class ForceLength(LogitsProcessor):
        def __init__(self, prompt_len: int, lengths: list[int]) -> None:
            self.prompt_len, self.lengths = prompt_len, torch.tensor(lengths)

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            n = input_ids.shape[1] - self.prompt_len  # tokens generated so far
            scores[:, tok.eos_token_id] = float("-inf")
            at_end = self.lengths <= n
            scores[at_end] = float("-inf")
            scores[at_end, tok.eos_token_id] = 0.0
            return scores

    def key(q: Any) -> tuple:
        return (temperature_for(q.category),
                len(tok(q.turns[0], add_special_tokens=False)["input_ids"]), q.question_id)

    groups: dict[float, list] = {}
    for q in sorted(questions * choices, key=key):  # a choice: the question once more
        groups.setdefault(temperature_for(q.category), []).append(q)
    tokens = 0
    torch.manual_seed(0)
    for temperature, group in groups.items():
        n = -(-len(group) // batch)
        size, extra = divmod(len(group), n)
        start = 0
        for i in range(n):
            qs = group[start:start + size + (i < extra)]
            start += len(qs)
            convs: list[list[dict[str, str]]] = [[] for _ in qs]
            for turn in range(2):
                for c, q in zip(convs, qs):
                    c.append({"role": "user", "content": q.turns[turn]})
                texts = tok.apply_chat_template(convs, add_generation_prompt=True, tokenize=False)
                enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
                lengths = [targets[q.question_id][turn] for q in qs]
                kw: dict[str, Any] = {"do_sample": temperature >= 1e-4}
                if kw["do_sample"]:
                    kw["temperature"] = temperature
                with torch.inference_mode():
                    out = model.generate(**enc, max_new_tokens=max(lengths) + 1,
                                         pad_token_id=tok.pad_token_id,
                                         logits_processor=LogitsProcessorList(
                                             [ForceLength(enc["input_ids"].shape[1], lengths)]),
                                         **kw)
                for c, ids in zip(convs, out[:, enc["input_ids"].shape[1]:].tolist()):
                    text, count = _clean_output(tok, ids, {tok.eos_token_id})
                    tokens += count
                    c.append({"role": "assistant", "content": text})
    return tokens


def _one(config: str, batch: int, max_new: int, nq: int, choices: int, model: str,
         dtype: str | None) -> None:
    from mt_bench_task.core.bench import load_bench

    questions = load_bench().select(0, nq)
    t0 = time.perf_counter()
    if config == "vllm":
        from mt_bench_task.engine.config import EngineOptions
        from mt_bench_task.engine.models import resolve_model_path
        from mt_bench_task.engine.vllm.engine import VllmEngine

        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "4")
        engine = VllmEngine.start(EngineOptions(max_model_len=4096, dtype=dtype),
                                  resolve_model_path(model, "main"))
        startup = time.perf_counter() - t0
        targets = _targets(engine.tok, max_new)
        t0 = time.perf_counter()
        tokens = _run_vllm(engine, questions, targets, choices)
    else:
        import torch

        from mt_bench_task.engine.hf.models import load_model_and_tokenizer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        lm, tok = load_model_and_tokenizer(model, dtype, device=device)
        startup = time.perf_counter() - t0
        targets = _targets(tok, max_new)
        run = _run_static if config == "static" else _run_cont
        t0 = time.perf_counter()
        tokens = run(lm, tok, questions, targets, batch, choices)
    seconds = time.perf_counter() - t0
    if config == "vllm":
        engine.close()
    want = choices * sum(sum(targets[q.question_id]) for q in questions)
    # peak RSS is this process's: vLLM's engine core runs in a process of its own
    print(json.dumps({"config": config, "tokens": tokens, "expected": want, "seconds": seconds,
                      "startup": startup,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-new-token", type=int, default=1024)
    ap.add_argument("--questions", type=int, default=80)
    ap.add_argument("--choices", type=int, default=1)
    ap.add_argument("--configs", default="static,cont")
    ap.add_argument("--model", default="default",
                    help="model dir or cached hub id ('default': the embedded SmolLM2-135M)")
    ap.add_argument("--dtype", default=None, help="default: the engines' own choice")
    ap.add_argument("--vllm-python", default=None,
                    help="python of a venv with vLLM: runs the vllm config there")
    ap.add_argument("--one", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        return _one(args.one, args.batch_size, args.max_new_token, args.questions, args.choices,
                    args.model, args.dtype)
    import torch

    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average before: {os.getloadavg()[0]:.2f}")
    results = []
    for config in args.configs.split(","):
        python = args.vllm_python if config == "vllm" and args.vllm_python else sys.executable
        out = subprocess.run([python, __file__, "--one", config, "--batch-size",
                              str(args.batch_size), "--max-new-token", str(args.max_new_token),
                              "--questions", str(args.questions), "--choices", str(args.choices),
                              "--model", args.model] + (["--dtype", args.dtype] if args.dtype else []),
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            raise SystemExit(f"{config} failed:\n{out.stderr[-3000:]}")
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = results[-1]
        print(f"{r['config']:<7} {r['tokens']:>6} tokens (expected {r['expected']}) "
              f"{r['seconds']:>7.1f} s {r['tokens'] / r['seconds']:>7.1f} tok/s "
              f"start-up {r['startup']:.1f} s peak RSS {r['peak_rss_mb']:.0f} MB", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    a = results[0]
    for b in results[1:]:
        print(f"{b['config']} vs {a['config']}: "
              f"{(b['tokens'] / b['seconds']) / (a['tokens'] / a['seconds']):.2f}x tok/s, "
              f"wall {a['seconds']:.1f} s -> {b['seconds']:.1f} s, "
              f"with start-up {a['seconds'] + a['startup']:.1f} s -> "
              f"{b['seconds'] + b['startup']:.1f} s")


if __name__ == "__main__":
    main()
