"""Answer-generation speed: FastChat's gen_model_answer (batch 1) vs `mt-bench gen` (batched).

One run, one machine, one model: SmolLM2-135M-Instruct (the embedded GGUF converted to bf16
safetensors), the same 16 questions (ids 101-116, reasoning and math: temperature 0, so every run
is greedy), both turns, at most 128 new tokens per turn, bf16. Two token counts: tokens generate()
produced (stop token excluded), and the answer texts re-tokenized with the model's tokenizer (what
is left after FastChat's stop_str cut). Seconds exclude model loading.

  (a) FastChat 0.2.36's own run_eval/get_model_answers, from a separate venv (default
      /tmp/fschat-venv: `pip install fschat==0.2.36 --no-deps`, torch/transformers shared from this
      venv through a .pth file), under a CPU shim: Tensor.cuda() is a no-op, load_model gets
      device="cpu", and `anthropic` (imported, unused) is stubbed when missing. FastChat picks its
      conversation template by model id and falls back to "one_shot" for this model, so its prompts
      are longer than the model's own template: the script prints which template it used.
  (a') `mt-bench gen --batch-size 1`: FastChat's per-question batch-1 loop with the model's own
      template (the fallback for (a), and the batching effect without the template difference).
  (b) `mt-bench gen` defaults (bf16, a continuous batch of at most 32 rows: with one choice the
      16 questions' turns are at most 16 rows, each question's turn 2 entering when its turn 1
      ends), run twice: (b1) before (a) and (b2) after the others, since a shared machine's speed
      drifts over the minutes (a) takes; the ratios use (b1) and (b2) together (tokens / seconds).

  (c) with --vllm-python (a venv with vLLM; here its CPU build, .ci/run's recipe):
      bench_vllm.py in that venv: `mt-bench gen --engine vllm` (the seam and the answer file) and
      the same requests on vLLM's step loop directly, alternately, after one timed engine start.

Usage: python benchmarks/bench_generate.py [--fschat-python PATH] [--skip-batch1]
       [--vllm-python PATH] [--questions N] [--max-new-token T]   (smaller runs when busy)
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

QUESTION_BEGIN = 20  # id 101: ids 101-116 are reasoning and math, temperature 0
NUM_QUESTIONS = 16
MAX_NEW_TOKEN = 128
FSCHAT_VENV = Path("/tmp/fschat-venv")

_FASTCHAT_SHIM = r'''
import json, sys, time, types
try:
    import anthropic  # noqa: F401  (llm_judge.common imports it; answer generation never uses it)
except ImportError:
    sys.modules["anthropic"] = types.ModuleType("anthropic")
import torch
torch.Tensor.cuda = lambda self, *a, **k: self  # FastChat hard-codes .cuda()
import fastchat
import fastchat.llm_judge.gen_model_answer as g
from fastchat.model import get_conversation_template

real_load, load_seconds, generated = g.load_model, [0.0], [0]
def load_on_cpu(*a, **kw):
    t0 = time.perf_counter()
    kw["device"] = "cpu"  # FastChat hard-codes device="cuda"
    model, tok = real_load(*a, **kw)
    load_seconds[0] += time.perf_counter() - t0
    real_generate, eos = model.generate, model.generation_config.eos_token_id
    def counting_generate(input_ids, **gen_kw):  # tokens generated, even those cut by stop_str
        out = real_generate(input_ids, **gen_kw)
        new = out[0, input_ids.shape[1]:].tolist()
        generated[0] += len(new) - (1 if new and new[-1] == eos else 0)
        return out
    model.generate = counting_generate
    return model, tok
g.load_model = load_on_cpu
model_path, model_id, qfile, begin, end, afile, max_new = sys.argv[1:8]
t0 = time.perf_counter()
g.run_eval(model_path, model_id, qfile, int(begin), int(end), afile, int(max_new),
           1, 1, 1, None, torch.bfloat16, "main")
seconds = time.perf_counter() - t0 - load_seconds[0]
g.reorg_answer_file(afile)
import resource
print(json.dumps({"seconds": seconds, "generated": generated[0],
                  "template": get_conversation_template(model_id).name,
                  "fastchat": fastchat.__version__,
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''

_MT_BENCH_RUN = r'''
import json, resource, sys
from dataclasses import replace
from pathlib import Path
from mt_bench_task.engine.generate import GenerationConfig, generate_answers
cfg = GenerationConfig(data_dir=Path(sys.argv[1]), question_begin=int(sys.argv[2]),
                       question_end=int(sys.argv[3]), max_new_token=int(sys.argv[4]))
if sys.argv[5] != "default":
    cfg = replace(cfg, batch_size=int(sys.argv[5]))
s = generate_answers(cfg)
print(json.dumps({"seconds": s.seconds, "generated": s.tokens, "file": str(cfg.output_path),
                  "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


class _Run(NamedTuple):
    label: str
    questions: int
    answer_tokens: int  # the answer texts re-tokenized: what a judge will read
    generated: int  # tokens generate() produced (FastChat's stop_str cuts some of them off)
    seconds: float
    rss_mb: float  # the run's process peak RSS (model loading included)


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def _count_tokens(tok, answer_file: Path) -> tuple[int, int]:
    rows = [json.loads(x) for x in answer_file.read_text().splitlines() if x.strip()]
    texts = [t for r in rows for t in r["choices"][0]["turns"]]
    return len(rows), sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts)


def _setup_fschat(venv: Path) -> Path | None:
    """A venv with fschat 0.2.36 (no deps) that sees this venv's packages; None if pip fails."""
    python = venv / "bin" / "python"
    if python.is_file():
        return python
    import site
    import venv as venv_mod

    venv_mod.create(venv, with_pip=True)
    pth = next((venv / "lib").glob("python3*/site-packages")) / "main-venv.pth"
    pth.write_text("\n".join(site.getsitepackages()) + "\n")
    pip = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "fschat==0.2.36"])
    return python if pip.returncode == 0 else None


def _run_fastchat(python: Path, model_dir: str, question_file: Path, work: Path, end: int,
                  max_new: int) -> dict | None:
    answer_file = work / "fastchat" / "smollm2-135m-instruct.jsonl"
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(_FASTCHAT_SHIM)
    cmd = [str(python), f.name, model_dir, "smollm2-135m-instruct", str(question_file),
           str(QUESTION_BEGIN), str(end), str(answer_file), str(max_new)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    os.unlink(f.name)
    if result.returncode != 0:
        print(f"(a) FastChat 0.2.36 could not run:\n{result.stderr[-2000:]}", file=sys.stderr)
        return None
    return {**_last_json(result.stdout), "file": str(answer_file)}


def _run_mt_bench(work: Path, batch_size: int | str, end: int, max_new: int, tag: str = "") -> dict:
    result = subprocess.run([sys.executable, "-c", _MT_BENCH_RUN, str(work / f"b{batch_size}{tag}"),
                             str(QUESTION_BEGIN), str(end), str(max_new), str(batch_size)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"mt-bench gen failed:\n{result.stderr[-3000:]}")
    return _last_json(result.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--fschat-python", default=None,
                    help=f"python of a venv with fschat 0.2.36 (default: set up {FSCHAT_VENV})")
    ap.add_argument("--skip-batch1", action="store_true", help="skip (a') to save ~4 minutes")
    ap.add_argument("--vllm-python", default=None,
                    help="python of a venv with vLLM: adds the vllm engine's rows (c)")
    ap.add_argument("--questions", type=int, default=NUM_QUESTIONS, help="at most 16 (greedy ones)")
    ap.add_argument("--max-new-token", type=int, default=MAX_NEW_TOKEN)
    args = ap.parse_args()
    end, max_new = QUESTION_BEGIN + min(args.questions, NUM_QUESTIONS), args.max_new_token

    import torch

    from mt_bench_task.core.bench import load_bench
    from mt_bench_task.engine.models import default_model_dir, load_tokenizer

    model_dir = str(default_model_dir())
    tok = load_tokenizer(model_dir)
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; load average before: {os.getloadavg()[0]:.2f}")
    print(f"model {model_dir} (bf16), questions {QUESTION_BEGIN}:{end} ({end - QUESTION_BEGIN}, "
          f"greedy), 2 turns, max {max_new} new tokens\n")
    runs: list[_Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        python = Path(args.fschat_python) if args.fschat_python else _setup_fschat(FSCHAT_VENV)
        # (b) runs before and after the others: the machine's speed drifts over minutes (shared
        # hosts), and (a) takes minutes; the ratio uses the mean of the two (b) runs
        before = _run_mt_bench(work, "default", end, max_new, tag="-before")
        fast = (_run_fastchat(python, model_dir, Path(load_bench().sources["questions"]), work, end, max_new)
                if python else None)
        if fast is not None:
            label = (f"(a)  FastChat {fast['fastchat']} gen_model_answer, batch 1, CPU shim, "
                     f"template {fast['template']!r}")
            runs.append(_Run(label, *_count_tokens(tok, Path(fast["file"])), fast["generated"],
                             fast["seconds"], fast["rss_mb"]))
        if fast is None or not args.skip_batch1:
            one = _run_mt_bench(work, 1, end, max_new)
            runs.append(_Run("(a') batch-1 reproduction of FastChat's loop (mt-bench gen "
                             "--batch-size 1), model's own template",
                             *_count_tokens(tok, Path(one["file"])), one["generated"],
                             one["seconds"], one["rss_mb"]))
        after = _run_mt_bench(work, "default", end, max_new, tag="-after")
        for label, b in (("(b1) mt-bench gen defaults, run before (a)", before),
                         ("(b2) mt-bench gen defaults, run after (a)", after)):
            runs.append(_Run(label + " (bf16, continuous batch of <= 32 rows)",
                             *_count_tokens(tok, Path(b["file"])), b["generated"],
                             b["seconds"], b["rss_mb"]))

    print(f"{'run':<96} {'questions':>9} {'answer tok':>10} {'generated':>9} {'seconds':>8} "
          f"{'gen tok/s':>9} {'answer tok/s':>12} {'peak RSS MB':>11}")
    for r in runs:
        print(f"{r.label:<96} {r.questions:>9} {r.answer_tokens:>10} {r.generated:>9} "
              f"{r.seconds:>8.1f} {r.generated / r.seconds:>9.1f} "
              f"{r.answer_tokens / r.seconds:>12.1f} {r.rss_mb:>11.0f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")
    b1, b2 = runs[-2:]
    ours = _Run("(b)", b1.questions, b1.answer_tokens + b2.answer_tokens, b1.generated + b2.generated,
                b1.seconds + b2.seconds, max(b1.rss_mb, b2.rss_mb))  # the two runs' mean rates
    for base in runs[:-2]:
        gen_ratio = (ours.generated / ours.seconds) / (base.generated / base.seconds)
        answer_ratio = (ours.answer_tokens / ours.seconds) / (base.answer_tokens / base.seconds)
        print(f"(b) vs {base.label.split()[0]}: {gen_ratio:.1f}x generated tok/s, "
              f"{answer_ratio:.1f}x answer tok/s")
    if args.vllm_python:
        _vllm_rows(args.vllm_python, end, max_new, ours.generated / ours.seconds)


def _vllm_rows(python: str, end: int, max_new: int, ours: float) -> None:
    """(c): the vllm engine through the seam and vLLM directly (bench_vllm.py, its own venv)."""
    root = Path(__file__).parent.parent
    result = subprocess.run([python, str(root / "benchmarks" / "bench_vllm.py"), str(QUESTION_BEGIN),
                             str(end), str(max_new)], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(root)})
    if result.returncode != 0:
        print(f"(c) vLLM could not run:\n{result.stderr[-2000:]}", file=sys.stderr)
        return
    v = _last_json(result.stdout)
    print(f"\n(c) vLLM engine (CPU build, no GPU here): start-up {v['startup']:.1f} s (not in the "
          f"rates); load average at its end {v['load']:.2f}")
    rate = {}
    for kind in ("seam", "direct"):
        runs = [r for r in v["runs"] if r["kind"] == kind]
        tokens, seconds = sum(r["generated"] for r in runs), sum(r["seconds"] for r in runs)
        rate[kind] = tokens / seconds
        each = ", ".join(f"{r['generated'] / r['seconds']:.1f}" for r in runs)
        print(f"  {kind:<6} {len(runs)} runs, {tokens} generated tokens in {seconds:.1f} s: "
              f"{rate[kind]:.1f} tok/s (each: {each})")
    print(f"  seam / direct: {rate['seam'] / rate['direct']:.3f}; vllm engine / (b): "
          f"{rate['seam'] / ours:.2f}x generated tok/s")

if __name__ == "__main__":
    main()
