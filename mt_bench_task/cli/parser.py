"""The `mt-bench` command line, declared: subcommands, their options (shared groups declared
once) and the help texts. `cli.py` runs the commands; nothing here imports the library."""
from __future__ import annotations

import argparse
from typing import NoReturn

from mt_bench_task.cli import official as cli_official
from mt_bench_task.cli import stats as cli_stats
from mt_bench_task.core.judge_spec import DEFAULT_BASELINE, DEFAULT_JUDGE, DEFAULT_MODE, MODES
from mt_bench_task.engine.registry import ENGINES

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
missing repeats); show reports the judge's spread (judge_sd) next to the score.
--batch sends the plan as one Batch API job (half price at OpenAI); its ids are saved next to the
judgment file, so a killed, interrupted or --no-wait run is collected by the next --batch run.
every run prints its cost plan first and its tokens, price and failure share last."""


REQUEST_TIMEOUT_HELP = ("seconds to wait for one answer (default 120); a request is tried again at "
                        "once after a timeout, up to 6 times, so a server that never answers "
                        "fails each request within about 7 x S seconds")

FAIL_IF_LOCKED_HELP = ("when another run is writing the same output file, stop at once (exit 2, "
                       "naming its pid) instead of waiting for it to finish")


# ---- option groups shared by several subcommands (declared once) ----
def add_bench(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bench-name", default="mt_bench",
                   help="mt_bench (default), vicuna_bench, or your own bench's name (its data dir "
                        "then needs a question.jsonl)")
    p.add_argument("--data-dir", default=None,
                   help="root of model_answer/ and model_judgment/ (default: data/<bench-name>); "
                        "its own question.jsonl, reference_answer/<judge>.jsonl and "
                        "judge_prompts.jsonl replace the packaged ones")


def add_questions(p: argparse.ArgumentParser) -> None:
    p.add_argument("--question-begin", type=int, default=None, help="slice start (debug)")
    p.add_argument("--question-end", type=int, default=None, help="slice end (debug)")
    p.add_argument("--num-choices", type=int, default=1, help="answers per question")


def add_thinking(p: argparse.ArgumentParser) -> None:
    """A thinking model's options (gen, gen-api, run): docs/thinking-models.md."""
    from mt_bench_task.core.thoughts import DEFAULT_THINKING_TOKENS

    p.add_argument("--max-thinking-tokens", type=int, default=DEFAULT_THINKING_TOKENS,
                   metavar="N", help="added to the answer budget per turn for a model that "
                   "thinks (its chat template or --think-tags says so; gen-api: once a reply "
                   "held a thought); 0: none (default: %(default)s)")
    p.add_argument("--think-tags", nargs=2, default=None, metavar=("OPEN", "CLOSE"),
                   help="the model thinks in these tags (default: <think> </think>, or the "
                        "pair its chat template names); the thought is kept beside the answer")


def add_local_model(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--model-path", required=required,
                   help="HF model dir or hub id in the local cache; 'default' = embedded SmolLM2-135M")
    p.add_argument("--model-id", default=None, help="name for the answer file (default: from path)")
    p.add_argument("--max-new-token", type=int, default=1024,
                   help="max new tokens per turn (the answer's; a thinking model gets "
                        "--max-thinking-tokens more)")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default=None,
                   help="default: bfloat16 where supported, else float32")
    p.add_argument("--revision", default="main")
    p.add_argument("--batch-size", type=int, default=32,
                   help="max rows (question x choice x turn) decoded at once; halved on CUDA OOM")
    p.add_argument("--chat-template", default=None,
                   help="Jinja chat template file, for models whose tokenizer has none")
    p.add_argument("--num-processes", type=int, default=1,
                   help="hf engine: spawn N accelerate processes (or run under `accelerate launch`); "
                        "the same as --data-parallel-size there")
    add_engine(p)
    add_thinking(p)


def add_engine(p: argparse.ArgumentParser, judge: bool = False) -> None:
    """The engine and vLLM's pass-through options: of the model under test (gen; run, where a
    local judge runs on them too), or of a local judge (judge, calibrate)."""
    p.add_argument("--engine", choices=ENGINES, default="auto",
                   help=("a local judge's engine: " if judge else "") +
                        "auto (default): vllm when it is installed and a GPU is present, else hf "
                        "(transformers in this process)")
    g = p.add_argument_group("vllm engine (vLLM's EngineArgs; multi-node: README, vLLM engine)")
    g.add_argument("--tensor-parallel-size", type=int, default=1)
    g.add_argument("--pipeline-parallel-size", type=int, default=1)
    if judge:
        g.add_argument("--dtype", default=None, help="a local judge's dtype (default: bfloat16 "
                                                     "where supported)")
    else:
        g.add_argument("--data-parallel-size", type=int, default=1,
                       help="N engines sharing the questions, each in its own process on its own "
                            "GPUs (tensor x pipeline parallel size each); on the hf engine N "
                            "accelerate processes (docs/engines-data-parallel.md)")
    g.add_argument("--gpu-memory-utilization", type=float, default=None,
                   help="default: vLLM's")
    g.add_argument("--max-model-len", type=int, default=None,
                   help="default: the model's context length")


def add_judge_client(p: argparse.ArgumentParser, required: bool = False) -> None:
    """The judge and how it is called (judge, run, calibrate)."""
    p.add_argument("--judge-model", required=required, default=None if required else DEFAULT_JUDGE,
                   help="API model name, or a local HF model path, or 'default' (embedded model)")
    p.add_argument("--openai-api-base", default=None,
                   help="OpenAI-compatible base URL (default: $OPENAI_BASE_URL or api.openai.com)")
    p.add_argument("--parallel", type=int, default=1, help="concurrent judge requests")
    p.add_argument("--judge-repeats", type=int, default=1, metavar="K",
                   help="judge each match K times to measure judge noise (default 1: FastChat)")
    p.add_argument("--judge-max-tokens", type=int, default=None, metavar="N",
                   help="the judge's completion budget (default: FastChat's 2048); a verdict the "
                        "limit cuts (a judge that thinks) is asked again with 4x, at most twice, "
                        "up to 32768")
    p.add_argument("--judge-reasoning-effort", default=None,
                   choices=["minimal", "low", "medium", "high"],
                   help="sent as reasoning_effort (OpenAI's reasoning models, gpt-oss on vLLM)")
    p.add_argument("--references", default=None, metavar="inline|FILE",
                   help="reference answers for the math/reasoning/coding prompts: 'inline' (the "
                        "question file's own inline `reference` lists, e.g. MT-bench's corrected "
                        "ones) or any FastChat reference file; recorded in every judgment and "
                        "not comparable with published MT-bench (default: FastChat's, the "
                        "judge's reference_answer/<judge>.jsonl)")


def add_judge_name(p: argparse.ArgumentParser) -> None:
    """Which judge's files to read (show, report, publish)."""
    p.add_argument("--judge-model", default=None,
                   help="the judge whose judgment files to read, named as for `mt-bench judge` "
                        "('default' = the embedded judge); default: the only judge with judgment "
                        "files in DATA_DIR")


def add_judge_scale(p: argparse.ArgumentParser, prices: bool = True) -> None:
    """Batch API, pacing and prices (judge, run; calibrate without prices)."""
    p.add_argument("--batch", action="store_true",
                   help="judge through the Batch API (half price): one upload, one batch; a "
                        "killed or --no-wait run is collected by the next --batch run")
    p.add_argument("--batch-poll-interval", type=float, default=30.0, metavar="S",
                   help="seconds between checks of the batch (default 30)")
    p.add_argument("--batch-max-enqueued-tokens", type=int, default=None, metavar="N",
                   help="with --batch: the provider's queue for the judge model (prompt tokens "
                        "of batches in progress at once; OpenAI tier 1 gpt-4: 100000); the job "
                        "goes in batches under it, the next as earlier ones finish (default: "
                        "learnt from the provider's refusal)")
    p.add_argument("--no-wait", dest="batch_wait", action="store_false",
                   help="with --batch: submit, print the batch id and exit 0")
    p.add_argument("--max-requests-per-minute", type=int, default=None, metavar="N",
                   help="pace requests to N per minute (default: the server's x-ratelimit headers)")
    p.add_argument("--max-tokens-per-minute", type=int, default=None, metavar="N",
                   help="pace tokens (prompt estimate + max_tokens) to N per minute")
    p.add_argument("--max-wait", type=float, default=None, metavar="S",
                   help="seconds one request may keep meeting rate-limit 429s (it waits its "
                        "turn again each time) before it fails (default 900)")
    if not prices:
        return
    p.add_argument("--price-input", type=float, default=None, metavar="USD",
                   help="judge price per 1M prompt tokens (default: packaged OpenAI table)")
    p.add_argument("--price-output", type=float, default=None, metavar="USD",
                   help="judge price per 1M completion tokens")


def add_judge(p: argparse.ArgumentParser) -> None:
    add_judge_client(p)
    add_judge_scale(p)
    p.add_argument("--judge-file", default=None, help="judge prompts JSONL (default: packaged)")
    p.add_argument("--baseline-model", default=DEFAULT_BASELINE)
    p.add_argument("--mode", choices=MODES, default=DEFAULT_MODE)
    p.add_argument("--model-list", nargs="+", default=None, help="models to judge (default: all)")
    p.add_argument("--first-n", type=int, default=None, help="only the first N questions (debug)")
    p.add_argument("--allow-partial", action="store_true",
                   help="judge what exists when answers miss questions or turns")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (calls, estimated prompt tokens), call nothing")
    p.add_argument("--request-timeout", type=float, default=None, metavar="S",
                   help=REQUEST_TIMEOUT_HELP)
    p.add_argument("--fail-if-locked", action="store_true", help=FAIL_IF_LOCKED_HELP)


class Raw(argparse.RawDescriptionHelpFormatter):
    """Keeps the epilog's line breaks."""


class Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, `mt-bench <command>: error: ...`, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="mt-bench", description="MT-bench, FastChat-exact.", epilog=EXIT_CODES,
                formatter_class=Raw)
    sub = ap.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("gen", help="answer the questions with a local HF model (accelerate)")
    add_bench(p)
    add_questions(p)
    add_local_model(p, required=False)
    p.add_argument("--answer-file", default=None, help="default: DATA_DIR/model_answer/ID.jsonl")
    p.add_argument("--fail-if-locked", action="store_true", help=FAIL_IF_LOCKED_HELP)

    p = sub.add_parser("gen-api", help="answer the questions through an OpenAI-compatible API")
    add_bench(p)
    add_questions(p)
    p.add_argument("--model", required=True, help="model name sent to the API (= answer file id)")
    p.add_argument("--openai-api-base", default=None,
                   help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1 for vLLM "
                        "(default: $OPENAI_BASE_URL or api.openai.com); key from $OPENAI_API_KEY")
    p.add_argument("--parallel", type=int, default=1, help="questions in flight")
    p.add_argument("--max-tokens", type=int, default=1024,
                   help="max tokens per turn (the answer's; see --max-thinking-tokens)")
    p.add_argument("--force-temperature", type=float, default=None,
                   help="one temperature for every question (default: per category)")
    add_thinking(p)
    p.add_argument("--request-timeout", type=float, default=None, metavar="S",
                   help=REQUEST_TIMEOUT_HELP)
    p.add_argument("--fail-if-locked", action="store_true", help=FAIL_IF_LOCKED_HELP)

    p = sub.add_parser("judge", help="grade answers with the judge (FastChat's gen_judgment)",
                       epilog=JUDGE_NOTES + "\n" + EXIT_CODES, formatter_class=Raw)
    add_bench(p)
    add_judge(p)
    add_engine(p, judge=True)

    p = sub.add_parser("show", help="print the result tables (FastChat's show_result)",
                       epilog="--json adds \"judge\", \"comparable\" (published MT-bench: gpt-4 "
                              "only), \"judge_repeats\" and per model \"judge_sd\"")
    add_bench(p)
    p.add_argument("--input-file", default=None)
    add_judge_name(p)
    p.add_argument("--baseline-model", default=DEFAULT_BASELINE)
    p.add_argument("--mode", choices=MODES, default=DEFAULT_MODE)
    p.add_argument("--model-list", nargs="+", default=None)
    p.add_argument("--json", action="store_true", help="one JSON object on stdout")
    p.add_argument("--plot", default=None, help="write the per-category radar plot (PNG)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed for the 95%% CI")
    cli_official.add_leaderboard_options(p, plot=True)
    cli_stats.add_compare_option(p)

    p = sub.add_parser("calibrate", help="judge the official answers of 6 leaderboard models and "
                                         "compare with the official GPT-4 grades",
                       epilog=JUDGE_NOTES + "\n" + EXIT_CODES, formatter_class=Raw)
    add_judge_client(p, required=True)
    add_judge_scale(p, prices=False)
    add_engine(p, judge=True)
    cli_official.add_calibrate_options(p)  # --data-dir but no --bench-name: always MT-bench

    p = sub.add_parser("run", help="gen + judge + show in one go (defaults: embedded models)",
                       epilog=JUDGE_NOTES + "\n" + EXIT_CODES, formatter_class=Raw)
    add_bench(p)
    add_questions(p)
    add_local_model(p, required=False)
    add_judge(p)
    p.add_argument("--plot", default=None, help="radar PNG (default: DATA_DIR/radar.png)")
    p.set_defaults(judge_model=None, max_new_token=None)

    p = sub.add_parser("publish", help="write the scores into a Hub model card (model-index)")
    add_bench(p)
    p.add_argument("--repo-id", default=None,
                   help="the model repo (needed to publish; a --dry-run without it previews a new card)")
    p.add_argument("--results", default=None,
                   help="single-mode judgment JSONL, or the JSON of `show --json` "
                        "(default: DATA_DIR/model_judgment/<judge-model>_single.jsonl)")
    add_judge_name(p)
    p.add_argument("--model-id", default=None, help="which model's scores (default: only one)")
    p.add_argument("--create-pr", action="store_true")
    p.add_argument("--dry-run", action="store_true", help="print the card, push nothing")
    p.add_argument("--revision", default=None)

    p = sub.add_parser("push-dataset", help="push a packaged bench's dataset to the Hub")
    p.add_argument("--repo-id", required=True)
    p.add_argument("--bench-name", choices=["mt_bench", "vicuna_bench"], default="mt_bench")
    p.add_argument("--private", action="store_true")
    p.add_argument("--revision", default=None)

    p = sub.add_parser("import-inspect", help="write FastChat answer and judgment files from an "
                                              "inspect log of the mt_bench task")
    add_bench(p)
    p.add_argument("log", help="inspect log file (.eval or .json) of mt_bench_task/integrations/inspect_task.py")
    p.add_argument("--model-id", default=None,
                   help="answer file name (default: the log's model without its provider)")

    p = sub.add_parser("report", help="write a self-contained HTML report")
    add_bench(p)
    add_judge_name(p)
    p.add_argument("--out", default="report.html")
    cli_official.add_leaderboard_options(p)
    return ap
