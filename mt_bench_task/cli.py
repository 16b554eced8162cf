"""`mt-bench`: a thin CLI over the library. FastChat's flag names, one library call per subcommand.

Heavy imports (torch, transformers, openai, evaluate) happen inside the subcommand, so `--help`
is instant.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from . import cli_official  # calibrate and --leaderboard: MT-bench's official data

if TYPE_CHECKING:
    from .judging import JudgeRun
    from .scoring import ShowOutput

DEFAULT_DATA_ROOT = Path("data")
EXIT_CODES = """exit codes: 0 done; 1 finished but failures remain (re-run to retry them); 2 user or input
error, or a judge that refuses every request (one line `mt-bench <command>: error: ...`);
130 interrupted (finished records are kept; re-run to resume)."""
JUDGE_NOTES = """the judge: only gpt-4 through an OpenAI-compatible API with FastChat's judge prompts gives
scores comparable with published MT-bench; any other judge (another API model, a local model,
another --judge-file) is labelled "not comparable with published MT-bench" by judge, show, run,
report, publish and the evaluate metric.
reasoning models (o1/o3/o4-mini, gpt-5...): when the server answers HTTP 400 to max_tokens or to
temperature 0, the request is resent with max_completion_tokens (same budget) or without
temperature, for the rest of the run, and a warning says so once; other judges get FastChat's
exact request (temperature 0, max_tokens 2048, n 1).
--judge-repeats K judges every match K times (records get "repeat": 0..K-1; re-runs send only
missing repeats); show reports the judge's spread (judge_sd) next to the score."""


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir) if args.data_dir else DEFAULT_DATA_ROOT / args.bench_name


def _bench(args: argparse.Namespace):  # -> Bench, resolved once per command
    from .bench import load_bench

    return load_bench(args.bench_name, _data_dir(args), getattr(args, "judge_file", None))


def _judge_run(args: argparse.Namespace, **overrides: Any) -> JudgeRun:
    """The judge options as the library's plain `JudgeRun` value."""
    from .judging import JudgeRun

    return JudgeRun(**{**dict(
        data_dir=_data_dir(args), judge_model=args.judge_model, mode=args.mode,
        judge_file=Path(args.judge_file) if args.judge_file else None,
        baseline_model=args.baseline_model, model_list=args.model_list,
        parallel=max(1, args.parallel), first_n=args.first_n, base_url=args.openai_api_base,
        allow_partial=args.allow_partial, dry_run=args.dry_run,
        judge_repeats=args.judge_repeats), **overrides})


# ---- option groups shared by several subcommands (declared once) ----
def _add_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bench-name", default="mt_bench",
                   help="mt_bench (default), vicuna_bench, or your own bench's name (its data dir "
                        "then needs a question.jsonl)")
    p.add_argument("--data-dir", default=None,
                   help="root of model_answer/ and model_judgment/ (default: data/<bench-name>); "
                        "its own question.jsonl, reference_answer/<judge>.jsonl and "
                        "judge_prompts.jsonl replace the packaged ones")


def _add_questions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--question-begin", type=int, default=None, help="slice start (debug)")
    p.add_argument("--question-end", type=int, default=None, help="slice end (debug)")
    p.add_argument("--num-choices", type=int, default=1, help="answers per question")


def _add_local_model(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--model-path", required=required,
                   help="HF model dir or hub id in the local cache; 'default' = embedded SmolLM2-135M")
    p.add_argument("--model-id", default=None, help="name for the answer file (default: from path)")
    p.add_argument("--max-new-token", type=int, default=1024, help="max new tokens per turn")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                   help="default: bfloat16 where supported, else float32")
    p.add_argument("--revision", default="main")
    p.add_argument("--batch-size", type=int, default=32,
                   help="max questions per generate() call (split evenly per temperature)")
    p.add_argument("--chat-template", default=None,
                   help="Jinja chat template file, for models whose tokenizer has none")
    p.add_argument("--num-processes", type=int, default=1,
                   help="spawn N accelerate processes (or run under `accelerate launch` yourself)")


def _add_judge_client(p: argparse.ArgumentParser, required: bool = False) -> None:
    """The judge and how it is called (judge, run, calibrate)."""
    p.add_argument("--judge-model", required=required, default=None if required else "gpt-4",
                   help="API model name, or a local HF model path, or 'default' (embedded model)")
    p.add_argument("--openai-api-base", default=None,
                   help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL or api.openai.com)")
    p.add_argument("--parallel", type=int, default=1, help="concurrent judge requests")
    p.add_argument("--judge-repeats", type=int, default=1, metavar="K",
                   help="judge each match K times to measure judge noise (default 1: FastChat)")


def _add_judge(p: argparse.ArgumentParser) -> None:
    _add_judge_client(p)
    p.add_argument("--judge-file", default=None, help="judge prompts JSONL (default: packaged)")
    p.add_argument("--baseline-model", default="gpt-3.5-turbo")
    p.add_argument("--mode", choices=["single", "pairwise-baseline", "pairwise-all"],
                   default="single")
    p.add_argument("--model-list", nargs="+", default=None, help="models to judge (default: all)")
    p.add_argument("--first-n", type=int, default=None, help="only the first N questions (debug)")
    p.add_argument("--allow-partial", action="store_true",
                   help="judge what exists when answers miss questions or turns")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (calls, estimated prompt tokens), call nothing")


# ---- subcommands ----
def cmd_gen(args: argparse.Namespace) -> int:
    from .generate import GenerationConfig, generate_answers

    generate_answers(GenerationConfig.from_args(args, _data_dir(args)), _bench(args))
    return 0


def cmd_gen_api(args: argparse.Namespace) -> int:
    from .generate_api import generate_api_answers

    stats = generate_api_answers(
        model=args.model, data_dir=_data_dir(args), base_url=args.openai_api_base,
        parallel=args.parallel, max_tokens=args.max_tokens, num_choices=args.num_choices,
        question_begin=args.question_begin, question_end=args.question_end,
        force_temperature=args.force_temperature, bench=_bench(args))
    print(stats.summary())
    return 0 if stats.failed == 0 else 1  # "$ERROR$" answers are asked again on the next run


def cmd_judge(args: argparse.Namespace) -> int:
    from .judging import run_judging

    summary = run_judging(_judge_run(args), bench=_bench(args), on_plan=_to_stderr)
    if summary.sent:
        _to_stderr(summary.closing_line())
    return 0 if summary.ok else 1


def cmd_show(args: argparse.Namespace) -> int:
    cli_official.check_show_options(args)
    if args.leaderboard:  # among the published MT-bench models (MT-bench only)
        return cli_official.show_leaderboard(args, _data_dir(args), _bench(args))
    from .scoring import show

    out = show(data_dir=_data_dir(args), input_file=args.input_file, judge_model=args.judge_model,
               mode=args.mode, model_list=args.model_list, baseline_model=args.baseline_model,
               plot=args.plot, seed=args.seed, bench=_bench(args))
    print_show(out, as_json=args.json)
    return 0


def print_show(out: ShowOutput, as_json: bool = False) -> None:
    """The labels on stderr too, so `--json` output stays exactly the documented keys."""
    for label in out.labels:
        _to_stderr(f"NOTE: {label}")
    print(json.dumps(out.results) if as_json else out.text)
    if out.plot is not None:
        _to_stderr(f"radar plot: {out.plot}")


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def cmd_calibrate(args: argparse.Namespace) -> int:
    return cli_official.calibrate(args, _data_dir(args))  # always MT-bench: no bench to resolve


def cmd_run(args: argparse.Namespace) -> int:
    from .generate import GenerationConfig
    from .pipeline import QUICK_ANSWER_TOKENS, is_embedded, run_all

    if args.max_new_token is None:  # the quick run's budget for the embedded model
        args.max_new_token = QUICK_ANSWER_TOKENS if is_embedded(args.model_path) else 1024
    args.answer_file = None
    gen = GenerationConfig.from_args(args, _data_dir(args))
    judge = _judge_run(args, judge_model=args.judge_model or "default")
    summary = run_all(gen, judge, bench=_bench(args), plot=args.plot,
                      on_plan=_to_stderr)  # TODO-merge-gen: on_generated=lambda s: print(s.summary())
    if summary.judging.sent:
        _to_stderr(summary.judging.closing_line())
    if summary.shown is not None:
        print_show(summary.shown)
    return 0 if summary.ok else 1


def cmd_publish(args: argparse.Namespace) -> int:
    from .publishing import publish_results

    res = publish_results(repo_id=args.repo_id, data_dir=_data_dir(args), results_file=args.results,
                          judge_model=args.judge_model, model_id=args.model_id,
                          create_pr=args.create_pr, dry_run=args.dry_run, revision=args.revision,
                          bench=_bench(args))
    for note in res.notes:
        print(f"mt-bench publish: note: {note}", file=sys.stderr)
    if args.dry_run:
        print(res.card, end="" if res.card.endswith("\n") else "\n")
        print(f"mt-bench publish: dry run, nothing pushed; would commit {', '.join(res.files)} "
              f"to {args.repo_id}", file=sys.stderr)
    else:
        print(f"published {', '.join(res.files)}: {res.pr_url or res.commit_url}")
    return 0


def cmd_push_dataset(args: argparse.Namespace) -> int:
    from .publishing import push_dataset

    url = push_dataset(repo_id=args.repo_id, private=args.private, revision=args.revision,
                       bench=args.bench_name)
    print(f"pushed the dataset: {url}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report

    out = write_report(data_dir=_data_dir(args), judge_model=args.judge_model, out=Path(args.out),
                       bench=_bench(args), leaderboard=args.leaderboard)
    print(f"wrote {out}")
    return 0


def cmd_import_inspect(args: argparse.Namespace) -> int:
    from .inspect_import import import_inspect_log

    res = import_inspect_log(args.log, _data_dir(args), model_id=args.model_id)
    print(f"imported {res.answers} answers -> {res.answer_file}\n"
          f"imported {res.judgments} judgments (judge {res.judge}) -> {res.judgment_file}")
    if res.skipped:
        print(f"mt-bench import-inspect: note: {res.skipped} samples had no mt_bench score "
              f"(errored or cancelled) and were not imported", file=sys.stderr)
    mode = "" if res.mode == "single" else f" --mode {res.mode}"
    print(f"next: mt-bench show --data-dir {_data_dir(args)} --judge-model {res.judge}{mode}")
    return 0


class _Raw(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, `mt-bench <command>: error: ...`, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="mt-bench", description="MT-bench, FastChat-exact.", epilog=EXIT_CODES,
                 formatter_class=_Raw)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("gen", help="answer the questions with a local HF model (accelerate)")
    _add_bench(p)
    _add_questions(p)
    _add_local_model(p, required=False)
    p.add_argument("--answer-file", default=None, help="default: DATA_DIR/model_answer/ID.jsonl")
    p.set_defaults(func=cmd_gen)

    p = sub.add_parser("gen-api", help="answer the questions through an OpenAI-compatible API")
    _add_bench(p)
    _add_questions(p)
    p.add_argument("--model", required=True, help="model name sent to the API (= answer file id)")
    p.add_argument("--openai-api-base", default=None,
                   help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 for vLLM "
                        "(default: $OPENAI_BASE_URL or api.openai.com); key from $OPENAI_API_KEY")
    p.add_argument("--parallel", type=int, default=1, help="questions in flight")
    p.add_argument("--max-tokens", type=int, default=1024, help="max tokens per turn")
    p.add_argument("--force-temperature", type=float, default=None,
                   help="one temperature for every question (default: per category)")
    p.set_defaults(func=cmd_gen_api)

    p = sub.add_parser("judge", help="grade answers with the judge (FastChat's gen_judgment)",
                       epilog=JUDGE_NOTES + "\n" + EXIT_CODES, formatter_class=_Raw)
    _add_bench(p)
    _add_judge(p)
    p.set_defaults(func=cmd_judge)

    p = sub.add_parser("show", help="print the result tables (FastChat's show_result)",
                       epilog="--json adds \"judge\", \"comparable\" (published MT-bench: gpt-4 "
                              "only), \"judge_repeats\" and per model \"judge_sd\"")
    _add_bench(p)
    p.add_argument("--input-file", default=None)
    p.add_argument("--judge-model", default="gpt-4")
    p.add_argument("--baseline-model", default="gpt-3.5-turbo")
    p.add_argument("--mode", choices=["single", "pairwise-baseline", "pairwise-all"],
                   default="single")
    p.add_argument("--model-list", nargs="+", default=None)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--plot", default=None, help="write the per-category radar plot (PNG)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed for the 95%% CI")
    cli_official.add_leaderboard_options(p, plot=True)
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("calibrate", help="judge the official answers of 6 leaderboard models and "
                                         "compare with the official GPT-4 grades",
                       epilog=JUDGE_NOTES + "\n" + EXIT_CODES, formatter_class=_Raw)
    _add_judge_client(p, required=True)
    cli_official.add_calibrate_options(p)  # --data-dir but no --bench-name: always MT-bench
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("run", help="gen + judge + show in one go (defaults: embedded models)",
                       epilog=JUDGE_NOTES + "\n" + EXIT_CODES, formatter_class=_Raw)
    _add_bench(p)
    _add_questions(p)
    _add_local_model(p, required=False)
    _add_judge(p)
    p.add_argument("--plot", default=None, help="radar PNG (default: DATA_DIR/radar.png)")
    p.set_defaults(func=cmd_run, judge_model=None, max_new_token=None)

    p = sub.add_parser("publish", help="write the scores into a Hub model card (model-index)")
    _add_bench(p)
    p.add_argument("--repo-id", required=True)
    p.add_argument("--results", default=None,
                   help="single-mode judgment JSONL, or the JSON of `show --json` "
                        "(default: DATA_DIR/model_judgment/<judge-model>_single.jsonl)")
    p.add_argument("--judge-model", default="gpt-4")
    p.add_argument("--model-id", default=None, help="which model's scores (default: only one)")
    p.add_argument("--create-pr", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the card, push nothing")
    p.add_argument("--revision", default=None)
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("push-dataset", help="push a packaged bench's dataset to the Hub")
    p.add_argument("--repo-id", required=True)
    p.add_argument("--bench-name", choices=["mt_bench", "vicuna_bench"], default="mt_bench")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None)
    p.set_defaults(func=cmd_push_dataset)

    p = sub.add_parser("import-inspect", help="write FastChat answer and judgment files from an "
                                              "inspect log of the mt_bench task")
    _add_bench(p)
    p.add_argument("log", help="inspect log file (.eval or .json) of mt_bench_task/inspect_task.py")
    p.add_argument("--model-id", default=None,
                   help="answer file name (default: the log's model without its provider)")
    p.set_defaults(func=cmd_import_inspect)

    p = sub.add_parser("report", help="write a self-contained HTML report")
    _add_bench(p)
    p.add_argument("--judge-model", default="gpt-4")
    p.add_argument("--out", default="report.html")
    cli_official.add_leaderboard_options(p)
    p.set_defaults(func=cmd_report)
    return ap


# library parameters whose flag is not simply --<name with dashes>
_FLAG_OF_PARAM = {"results_file": "--results", "bench_name": "--bench-name"}


def _as_flags(error: Exception, parser: argparse.ArgumentParser, command: str) -> str:
    """A library error names parameters (`judge_repeats`); the CLI user knows flags (`--judge-repeats`)."""
    import re

    message = str(error)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    flags = {a.dest: a.option_strings[-1] for a in sub._actions if a.option_strings}
    for param in getattr(error, "params", ()):
        flag = _FLAG_OF_PARAM.get(param) or flags.get(param)
        if flag:
            message = re.sub(rf"(?<![\w-]){re.escape(param)}(?![\w-])", flag, message)
    return message


def _log_to_stderr() -> None:
    """The library says what it does through `logging` (notes, warnings); the CLI shows them on
    whatever sys.stderr is at the time (tests swap it)."""
    import logging

    class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
        @property  # type: ignore[override]
        def stream(self) -> Any:
            return sys.stderr

        @stream.setter
        def stream(self, value: Any) -> None:
            pass

    logger = logging.getLogger("mt_bench_task")
    if not any(type(h).__name__ == "StderrHandler" for h in logger.handlers):
        handler = StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    from .errors import DataError

    parser = build_parser()
    _log_to_stderr()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        parser.exit(2, f"mt-bench {args.command}: error: unrecognized arguments: "
                       f"{' '.join(unknown)} (see mt-bench {args.command} --help)\n")
    # incompatible options are refused before any work
    if getattr(args, "plot", None) and getattr(args, "mode", "single") != "single":
        parser.exit(2, f"mt-bench {args.command}: error: --plot draws single-mode (1-10) scores; "
                       f"it cannot be used with --mode {args.mode}\n")
    try:
        return args.func(args)
    except DataError as e:
        print(f"mt-bench {args.command}: error: {_as_flags(e, parser, args.command)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mt-bench {args.command}: interrupted; finished records are saved, re-run to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
