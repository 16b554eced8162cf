"""mt_bench_task: MT-bench, FastChat-exact and HF-native."""
from .data import dataset_path, load_questions, load_references, load_judge_prompts, load_answers
from .jsonl import DataError
from .types import Answer, Choice, Completion, JudgePrompt, PairJudgment, Question, SingleJudgment

__all__ = ["dataset_path", "load_questions", "load_references", "load_judge_prompts", "load_answers",
           "DataError", "Answer", "Choice", "Completion", "JudgePrompt", "PairJudgment", "Question",
           "SingleJudgment"]
