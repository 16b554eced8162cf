"""The workspace: a bench and the data dir its answers and judgments live in, resolved once.

Every command resolves `--bench-name` / `--data-dir` (and `--judge-file`) into one `Workspace`;
the stages take it and never re-load a default bench. It also owns the one rule that turns a
judge name into its judgment file, for every command alike: `--judge-model default` is the
embedded judge's file, a local judge given as a path its basename's, an API model its own name;
with no judge given, the one judgment file of the mode that the data dir holds. And the one rule
for a bench named by a library caller (`open_bench`: the metric, inspect).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mt_bench_task.core import data
from mt_bench_task.core.bench import DEFAULT_BENCH, PACKAGED, Bench, load_bench
from mt_bench_task.core.errors import DataError, ParameterError
from mt_bench_task.core.judge_spec import judge_spec

DEFAULT_DATA_ROOT = Path("data")  # FastChat's data/<bench>/, relative to where the user runs


@dataclass(frozen=True)
class Workspace:
    bench: Bench
    data_dir: Path

    def answer_file(self, model_id: str) -> Path:
        return data.answer_file(self.data_dir, model_id)

    def answer_models(self) -> list[str]:
        return data.list_answer_models(self.data_dir)

    def judgment_file(self, judge_model: str, mode: str) -> Path:
        """The file `mt-bench judge --judge-model JUDGE_MODEL --mode MODE` writes."""
        return data.judgment_file(self.data_dir, judge_name(judge_model), mode)

    def judgment_files(self, mode: str) -> list[Path]:
        suffix = "_single.jsonl" if mode == "single" else "_pair.jsonl"
        return sorted(self.data_dir.glob(f"model_judgment/*{suffix}"))

    def resolve_judge(self, judge_model: str | None, modes: tuple[str, ...] = ("single",),
                      fallback: str | None = None) -> str:
        """The judge whose files to read: the one named (`judge_name`), else the only judge with
        judgment files of these modes in the data dir; with none, `fallback` if given (a report
        of answers alone); otherwise a ParameterError that names the files and the flag."""
        if judge_model is not None:
            return judge_name(judge_model)
        found = [p for mode in modes for p in self.judgment_files(mode)]
        judges = sorted({p.name.rsplit("_", 1)[0] for p in found})
        if len(judges) == 1:
            return judges[0]
        if not judges and fallback is not None:
            return fallback
        where = self.data_dir / "model_judgment"
        kinds = " or ".join(dict.fromkeys("single" if m == "single" else "pairwise" for m in modes))
        if not judges:
            raise ParameterError(f"{where}: no {kinds} judgment files (run `mt-bench judge` first, "
                                 "or name the judge with judge_model)", "judge_model")
        raise ParameterError(f"{where}: judgment files of several judges "
                             f"({', '.join(p.name for p in found)}); choose one with judge_model "
                             f"({' or '.join(judges)})", "judge_model")


def judge_name(judge_model: str) -> str:
    """The name a judge's records and files carry ("default" -> the embedded judge's name)."""
    return judge_spec(judge_model).display_name


def data_dir_of(bench_name: str, data_dir: Path | str | None = None) -> Path:
    """The data dir: the one given, else FastChat's data/<bench_name>."""
    return Path(data_dir) if data_dir else DEFAULT_DATA_ROOT / bench_name


def open_workspace(bench_name: str = DEFAULT_BENCH, data_dir: Path | str | None = None,
                   judge_file: Path | str | None = None) -> Workspace:
    """Resolve the bench (the data dir's own files win, see `load_bench`) and the data dir."""
    root = data_dir_of(bench_name, data_dir)
    return Workspace(load_bench(bench_name, root, judge_file), root)


def workspace_at(data_dir: Path | str, workspace: Workspace | None = None) -> Workspace:
    """The workspace a stage given `data_dir` works in: `workspace` when the caller has one (the
    CLI: --bench-name's bench), else the data dir's (`open_workspace`: its own question file,
    else MT-bench's)."""
    return workspace if workspace is not None else open_workspace(data_dir=data_dir)


def open_bench(bench: str | Path | Bench) -> Bench:
    """A bench as a library caller names it: a Bench as is; a packaged name ("mt_bench",
    "vicuna_bench") that bench; else a folder in FastChat's layout, named by its dir (its
    question.jsonl, reference_answer/ and judge_prompts.jsonl win over the packaged ones; the
    data dir's rule, `load_bench`). A name wins over a folder of the same name in the working
    dir: give that one as a Path or `./mt_bench`."""
    if isinstance(bench, Bench):
        return bench
    if isinstance(bench, str) and bench in PACKAGED:
        return load_bench(bench)
    folder = Path(bench)
    if not folder.is_dir():
        raise DataError(f"bench {str(bench)!r}: not one of {', '.join(PACKAGED)} and not a folder")
    return load_bench(folder.resolve().name, data_dir=folder)
