"""mt_bench_task: MT-bench, FastChat-exact and HF-native."""
from mt_bench_task.core.bench import Bench, dataset_path, load_bench
from mt_bench_task.core.chat import Completion
from mt_bench_task.core.data import load_answers, read_answers, read_pair_judgments, read_single_judgments
from mt_bench_task.core.errors import DataError
from mt_bench_task.core.types import Answer, Choice, JudgePrompt, PairJudgment, Question, SingleJudgment
from mt_bench_task.integrations.register import register_metric
from mt_bench_task.integrations.register import register_quietly as _register_quietly

# `evaluate.load("mt_bench_judge")` by bare name needs our script in evaluate's modules cache:
# a 1 ms file copy, no evaluate/torch import; MT_BENCH_NO_REGISTER=1 turns it off.
_register_quietly()

__all__ = ["Bench", "load_bench", "dataset_path", "load_answers", "read_answers",
           "read_single_judgments", "read_pair_judgments", "DataError", "Answer", "Choice",
           "Completion", "JudgePrompt", "PairJudgment", "Question", "SingleJudgment",
           "register_metric"]
