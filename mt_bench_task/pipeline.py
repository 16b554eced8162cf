"""`mt-bench run`: generate, judge and show in one command.

With no arguments it is a quick, offline demonstration: the embedded SmolLM2-135M answers all 80
questions and the same model judges them (scores labelled not comparable with published MT-bench).
With `--model-path X --judge-model gpt-4` it is the real MT-bench with FastChat's defaults.
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from .bench import Bench, load_bench

# Budgets of the embedded quick run, so it finishes in minutes on a 2-core CPU; FastChat's are
# 1024 new tokens per answer and 2048 per judgment. Explicit flags always win.
QUICK_ANSWER_TOKENS = 96
QUICK_JUDGE_TOKENS = 8  # a 135M judge rarely writes a rating; the probability fallback decides
QUICK_JUDGE_BATCH = 16


def run_all(args: argparse.Namespace, data_dir: Path, bench: Bench | None = None) -> int:
    from .generate import GenerationConfig, generate_answers
    from .judges import make_client
    from .judging import JudgeRun, run_judging
    from .scoring import show

    bench = bench or load_bench(data_dir=data_dir)
    embedded = args.model_path in (None, "default")
    judge_model = args.judge_model or "default"
    args = argparse.Namespace(**{**vars(args), "answer_file": None})
    if args.max_new_token is None:
        args.max_new_token = QUICK_ANSWER_TOKENS if embedded else 1024
    gen = GenerationConfig.from_args(args, data_dir)
    generate_answers(gen, bench)  # prints its own summary line

    judge_run = replace(JudgeRun.from_args(argparse.Namespace(**{**vars(args), "judge_model": judge_model}),
                                           data_dir),
                        model_list=[gen.model_id], question_begin=args.question_begin,
                        first_n=args.question_end if args.first_n is None else args.first_n)
    spec = judge_run.judge  # its label is printed by the judging plan and by show
    client = None  # an API judge: run_judging makes it (after a dry run's plan, so no key needed)
    if spec.local:
        client = make_client(spec, local_batch_size=QUICK_JUDGE_BATCH,
                             local_max_new_tokens=QUICK_JUDGE_TOKENS if embedded else None)
        # many requests in flight, so the batcher can group prompts of similar length
        judge_run = replace(judge_run, parallel=max(judge_run.parallel, 8 * QUICK_JUDGE_BATCH))
    summary = run_judging(judge_run, client=client, bench=bench)
    if judge_run.dry_run:
        return 0
    plot = args.plot or str(data_dir / "radar.png")
    show(data_dir=data_dir, input_file=None, judge_model=spec.display_name,
         mode=judge_run.mode, model_list=None,
         baseline_model=judge_run.baseline_model, plot=plot if judge_run.mode == "single" else None,
         bench=bench)
    return 0 if summary.ok else 1

