"""`mt-bench`: a thin CLI over the library. FastChat's flag names, one library call per subcommand.

Heavy imports (torch, transformers, openai, evaluate) happen inside the subcommand, so `--help`
is instant.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mt_bench_task.cli import official as cli_official  # calibrate and --leaderboard: MT-bench's official data
from mt_bench_task.cli import stats as cli_stats  # show --compare
from mt_bench_task.cli.options import (
    data_dir,
    generation_config,
    judge_engine_options,
    judge_run,
    judge_to_read,
    workspace,
)
from mt_bench_task.cli.parser import build_parser

if TYPE_CHECKING:
    from mt_bench_task.outputs.views import ShowOutput


# ---- subcommands ----
def cmd_gen(args: argparse.Namespace) -> int:
    from mt_bench_task.engine.generate import generate_answers

    cfg = generation_config(args)
    print(generate_answers(cfg, workspace(args)).summary())
    _answer_notes(cfg.output_path)
    return 0


def _answer_notes(path: Path) -> None:
    """Thoughts and token limits in the answer file just written (`thoughts.AnswerCounts`)."""
    from mt_bench_task.core.data import read_answers
    from mt_bench_task.core.ids import model_id_of_stem
    from mt_bench_task.core.thoughts import count_answers

    note = (count_answers(read_answers(path)).note(model_id_of_stem(path.stem))
            if path.is_file() else None)
    if note:
        _to_stderr(f"answers: {note}")


def cmd_gen_api(args: argparse.Namespace) -> int:
    from mt_bench_task.engine.api import generate_api_answers

    stats = generate_api_answers(
        model=args.model, data_dir=data_dir(args), base_url=args.openai_api_base,
        parallel=args.parallel, max_tokens=args.max_tokens, num_choices=args.num_choices,
        question_begin=args.question_begin, question_end=args.question_end,
        force_temperature=args.force_temperature, request_timeout=args.request_timeout,
        wait_for_lock=not args.fail_if_locked, workspace=workspace(args),
        max_thinking_tokens=args.max_thinking_tokens,
        think_tags=tuple(args.think_tags) if args.think_tags else None)
    print(stats.summary())
    _answer_notes(stats.path)
    return 0 if stats.failed == 0 else 1  # "$ERROR$" answers are asked again on the next run


def cmd_judge(args: argparse.Namespace) -> int:
    from mt_bench_task.clients import make_client
    from mt_bench_task.judging.run import run_judging

    run = judge_run(args)
    client = None if run.dry_run else make_client(
        run.judge, base_url=run.base_url, local_engine=args.engine,
        local_options=judge_engine_options(args), timeout=run.request_timeout)
    summary = run_judging(run, client, workspace=workspace(args), on_plan=_to_stderr)
    if summary.sent or summary.batch_ids:
        for line in summary.end_lines():
            _to_stderr(line)
    if summary.batch_pending:
        print(" ".join(summary.batch_ids))
    return 0 if summary.ok else 1


def cmd_show(args: argparse.Namespace) -> int:
    cli_official.check_show_options(args)
    if not args.input_file:
        args.judge_model = judge_to_read(args, args.mode)
    if args.compare is not None:  # paired statistics (with --leaderboard: against the official models)
        return cli_stats.show_compare(args, data_dir(args), workspace(args))
    if args.leaderboard:  # among the published MT-bench models (MT-bench only)
        return cli_official.show_leaderboard(args, data_dir(args), workspace(args))
    from mt_bench_task.core.judge_spec import DEFAULT_JUDGE
    from mt_bench_task.outputs.views import show

    out = show(data_dir=data_dir(args), input_file=args.input_file,
               judge_model=args.judge_model or DEFAULT_JUDGE,
               mode=args.mode, model_list=args.model_list, baseline_model=args.baseline_model,
               plot=args.plot, seed=args.seed, workspace=workspace(args))
    print_show(out, as_json=args.json)
    return 0


def print_show(out: ShowOutput, as_json: bool = False) -> None:
    """The labels on stderr too, so `--json` output stays exactly the documented keys."""
    for label in out.labels:
        _to_stderr(f"NOTE: {label}")
    print(json.dumps(out.results.to_json()) if as_json else out.text)
    if out.plot is not None:
        _to_stderr(f"radar plot: {out.plot}")


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


def cmd_calibrate(args: argparse.Namespace) -> int:
    # always MT-bench: no bench to resolve
    return cli_official.calibrate(args, data_dir(args), judge_engine_options(args))


def cmd_run(args: argparse.Namespace) -> int:
    from mt_bench_task.core.judge_spec import EMBEDDED_JUDGE
    from mt_bench_task.pipeline import QUICK_ANSWER_TOKENS, is_embedded, run_all

    if args.max_new_token is None:  # the quick run's budget for the embedded model
        args.max_new_token = QUICK_ANSWER_TOKENS if is_embedded(args.model_path) else 1024
    args.answer_file = None
    gen = generation_config(args)
    judge = judge_run(args, judge_model=args.judge_model or EMBEDDED_JUDGE)
    summary = run_all(gen, judge, workspace=workspace(args), plot=args.plot,
                      on_plan=_to_stderr, on_generated=lambda s: print(s.summary()))
    if summary.judging.sent or summary.judging.batch_ids:
        for line in summary.judging.end_lines():
            _to_stderr(line)
    if summary.judging.batch_pending:
        print(" ".join(summary.judging.batch_ids))
    if summary.shown is not None:
        print_show(summary.shown)
        _to_stderr(_next_commands(args))
    return 0 if summary.ok else 1


def _next_commands(args: argparse.Namespace) -> str:
    """What `run` made, and the commands that show, report and publish it."""
    from mt_bench_task.core.judge_spec import EMBEDDED_JUDGE

    where = [f"--bench-name {args.bench_name}"] if args.bench_name != "mt_bench" else []
    where += [f"--data-dir {args.data_dir}"] if args.data_dir else []
    judges = {p.name.rsplit("_", 1)[0] for p in workspace(args).judgment_files(args.mode)}
    named = args.judge_model or (EMBEDDED_JUDGE if len(judges) > 1 else None)  # several: say which
    judge = where + ([f"--judge-model {named}"] if named else [])
    mode = [f"--mode {args.mode}"] if args.mode != "single" else []
    flags = " ".join(judge + mode)
    lines = ["next:", f"  mt-bench show {flags}".rstrip(),
             f"  mt-bench report {' '.join(judge)}".rstrip()]
    if args.mode == "single":
        lines.append(f"  mt-bench publish --dry-run {' '.join(judge)}".rstrip()
                     + "   (then --repo-id YOUR/MODEL to push the card)")
    return "\n".join(lines)


def cmd_publish(args: argparse.Namespace) -> int:
    from mt_bench_task.core.judge_spec import DEFAULT_JUDGE
    from mt_bench_task.outputs.publishing import publish_results

    judge = judge_to_read(args, "single") if not args.results else args.judge_model or DEFAULT_JUDGE
    res = publish_results(repo_id=args.repo_id, data_dir=data_dir(args), results_file=args.results,
                          judge_model=judge, model_id=args.model_id,
                          create_pr=args.create_pr, dry_run=args.dry_run, revision=args.revision,
                          workspace=workspace(args))
    for note in res.notes:
        print(f"mt-bench publish: note: {note}", file=sys.stderr)
    if args.dry_run:
        print(res.card, end="" if res.card.endswith("\n") else "\n")
        where = f"to {args.repo_id}" if args.repo_id else "(give --repo-id to publish)"
        print(f"mt-bench publish: dry run, nothing pushed; would commit {', '.join(res.files)} "
              f"{where}", file=sys.stderr)
    else:
        print(f"published {', '.join(res.files)}: {res.pr_url or res.commit_url}")
    return 0


def cmd_push_dataset(args: argparse.Namespace) -> int:
    from mt_bench_task.outputs.publishing import push_dataset

    url = push_dataset(repo_id=args.repo_id, private=args.private, revision=args.revision,
                       bench=args.bench_name)
    print(f"pushed the dataset: {url}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from mt_bench_task.core.judge_spec import DEFAULT_JUDGE
    from mt_bench_task.outputs.report import write_report

    judge = judge_to_read(args, "single", "pairwise-all", fallback=DEFAULT_JUDGE)  # answers alone
    out = write_report(data_dir=data_dir(args), judge_model=judge, out=Path(args.out),
                       workspace=workspace(args), leaderboard=args.leaderboard)
    print(f"wrote {out}")
    return 0


def cmd_import_inspect(args: argparse.Namespace) -> int:
    from mt_bench_task.integrations.inspect_import import import_inspect_log

    res = import_inspect_log(args.log, data_dir(args), model_id=args.model_id)
    print(f"imported {res.answers} answers -> {res.answer_file}\n"
          f"imported {res.judgments} judgments (judge {res.judge}) -> {res.judgment_file}")
    if res.skipped:
        print(f"mt-bench import-inspect: note: {res.skipped} samples had no mt_bench score "
              f"(errored or cancelled) and were not imported", file=sys.stderr)
    mode = "" if res.mode == "single" else f" --mode {res.mode}"
    print(f"next: mt-bench show --data-dir {data_dir(args)} --judge-model {res.judge}{mode}")
    return 0


COMMANDS = {
    "gen": cmd_gen,
    "gen-api": cmd_gen_api,
    "judge": cmd_judge,
    "show": cmd_show,
    "calibrate": cmd_calibrate,
    "run": cmd_run,
    "publish": cmd_publish,
    "push-dataset": cmd_push_dataset,
    "report": cmd_report,
    "import-inspect": cmd_import_inspect,
}


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


def _os_error(e: OSError) -> str:
    """"PATH: No space left on device" (the library names the file when the OS did not)."""
    reason = e.strerror or str(e) or type(e).__name__
    if isinstance(e, FileExistsError) and e.filename and Path(e.filename).is_file():
        reason = "a file is in the way of the directory to create there"
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


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
    from mt_bench_task.core.errors import DataError

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
        code = COMMANDS[args.command](args)
        for note in getattr(args, "_notes", []):
            print(note, file=sys.stderr)
        return code
    except DataError as e:
        print(f"mt-bench {args.command}: error: {_as_flags(e, parser, args.command)}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, read-only, not a directory, name too long: the path, once
        print(f"mt-bench {args.command}: error: {_os_error(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mt-bench {args.command}: interrupted; finished records are saved, re-run to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
