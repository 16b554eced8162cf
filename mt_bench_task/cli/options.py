"""The command line's namespaces as the library's values: the workspace (bench, data dir, which
judge's files), GenerationConfig, JudgeRun, SendOptions, a local judge's EngineOptions."""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mt_bench_task.core.bench import Bench
    from mt_bench_task.core.workspace import Workspace
    from mt_bench_task.engine.config import EngineOptions, GenerationConfig
    from mt_bench_task.judging.execute import SendOptions
    from mt_bench_task.judging.run import JudgeRun


def workspace(args: argparse.Namespace) -> Workspace:
    """The bench and data dir, resolved once per command (kept on `args`)."""
    if getattr(args, "_workspace", None) is None:
        from mt_bench_task.core.workspace import open_workspace

        args._workspace = open_workspace(args.bench_name, args.data_dir,
                                         getattr(args, "judge_file", None))
    return args._workspace


def data_dir(args: argparse.Namespace) -> Path:
    from mt_bench_task.core.workspace import data_dir_of

    return data_dir_of(args.bench_name, args.data_dir)


def bench(args: argparse.Namespace) -> Bench:
    return workspace(args).bench


def judge_to_read(args: argparse.Namespace, *modes: str, fallback: str | None = None) -> str:
    """--judge-model as its files are named, or the only judge whose files DATA_DIR holds (the
    command then says which files it reads)."""
    ws = workspace(args)
    judge = ws.resolve_judge(args.judge_model, modes, fallback)
    if args.judge_model is None:
        files = [p for mode in modes if (p := ws.judgment_file(judge, mode)).is_file()]
        found = ", ".join(map(str, files)) or f"no judgment files in {ws.data_dir / 'model_judgment'}"
        # said once the command succeeded: an error stays one line
        args._notes = [*getattr(args, "_notes", []), f"mt-bench {args.command}: judge {judge} ({found})"]
    return judge


def generation_config(args: argparse.Namespace) -> GenerationConfig:
    """The local-model options as the library's plain `GenerationConfig` value."""
    from mt_bench_task.engine.config import GenerationConfig
    from mt_bench_task.engine.models import DEFAULT_MODEL, model_id_for

    model_path = args.model_path or DEFAULT_MODEL
    answer_path = getattr(args, "answer_file", None)  # `mt-bench run` has no --answer-file
    return GenerationConfig(
        model_path=model_path, model_id=args.model_id or model_id_for(model_path),
        data_dir=data_dir(args), answer_file=Path(answer_path) if answer_path else None,
        question_begin=args.question_begin, question_end=args.question_end,
        max_new_token=args.max_new_token, num_choices=args.num_choices, dtype=args.dtype,
        revision=args.revision, batch_size=args.batch_size, chat_template=args.chat_template,
        num_processes=args.num_processes, engine=args.engine,
        tensor_parallel_size=args.tensor_parallel_size,
        pipeline_parallel_size=args.pipeline_parallel_size,
        data_parallel_size=args.data_parallel_size,
        gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
        max_thinking_tokens=args.max_thinking_tokens,
        think_tags=tuple(args.think_tags) if args.think_tags else None,
        wait_for_lock=not args.fail_if_locked)


def judge_engine_options(args: argparse.Namespace) -> EngineOptions:
    """A local judge's options (judge, calibrate)."""
    from mt_bench_task.engine.config import EngineOptions

    return EngineOptions(dtype=args.dtype, tensor_parallel_size=args.tensor_parallel_size,
                         pipeline_parallel_size=args.pipeline_parallel_size,
                         gpu_memory_utilization=args.gpu_memory_utilization,
                         max_model_len=args.max_model_len)


def judge_run(args: argparse.Namespace, **overrides: Any) -> JudgeRun:
    """The judge options as the library's plain `JudgeRun` value."""
    from mt_bench_task.judging.run import JudgeRun

    return JudgeRun(**{**dict(
        data_dir=data_dir(args), judge_model=args.judge_model, mode=args.mode,
        judge_file=Path(args.judge_file) if args.judge_file else None,
        baseline_model=args.baseline_model, model_list=args.model_list,
        first_n=args.first_n, base_url=args.openai_api_base,
        allow_partial=args.allow_partial, dry_run=args.dry_run,
        judge_repeats=args.judge_repeats, references=args.references,
        judge_max_tokens=args.judge_max_tokens, judge_reasoning_effort=args.judge_reasoning_effort,
        request_timeout=args.request_timeout, wait_for_lock=not args.fail_if_locked,
        send=replace(send_options(args), parallel=max(1, args.parallel))), **overrides})


def send_options(args: argparse.Namespace) -> SendOptions:
    """--parallel, --batch, pacing and price flags (calibrate has no price flags: the table's)."""
    from mt_bench_task.judging.execute import SendOptions

    return SendOptions(parallel=args.parallel, batch=args.batch,
                       batch_poll_interval=args.batch_poll_interval, batch_wait=args.batch_wait,
                       price_input=getattr(args, "price_input", None),
                       price_output=getattr(args, "price_output", None),
                       max_requests_per_minute=args.max_requests_per_minute,
                       max_tokens_per_minute=args.max_tokens_per_minute, max_wait=args.max_wait,
                       batch_max_enqueued_tokens=args.batch_max_enqueued_tokens)
