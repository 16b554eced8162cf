"""MT-bench judge metric: FastChat llm_judge's single grading and pairwise comparison."""

import evaluate

from mt_bench_task.integrations import metric

_CITATION = """\
@inproceedings{zheng2023judging,
  title={Judging {LLM}-as-a-Judge with {MT}-Bench and Chatbot Arena},
  author={Zheng, Lianmin and Chiang, Wei-Lin and Sheng, Ying and Zhuang, Siyuan and Wu, Zhanghao
          and Zhuang, Yonghao and Lin, Zi and Li, Zhuohan and Li, Dacheng and Xing, Eric P.
          and Zhang, Hao and Gonzalez, Joseph E. and Stoica, Ion},
  booktitle={Advances in Neural Information Processing Systems (Datasets and Benchmarks)},
  year={2023},
  eprint={2306.05685},
}
"""

_DESCRIPTION = """\
MT-bench asks 80 two-turn questions in 8 categories; a strong LLM judge (GPT-4) grades the answers
with FastChat's judge prompts. Config `single` rates each turn 1-10 and reports the mean
(FastChat's "Average"), per-turn and per-category means. Config `pairwise` compares each turn with
a baseline's answer (gpt-3.5-turbo's official answers by default) in both orders and reports
FastChat's win/loss/tie rates. The numbers equal `mt-bench show --json` on the same judgments.
"""

_KWARGS_DESCRIPTION = """
Judges answers to MT-bench questions and scores them.
Load-time (judge) arguments, `evaluate.load("mt_bench_judge", "single" | "pairwise", ...)`:
    judge_model (`str`): API model name (default "gpt-4"), or "default" / a local model dir for a
        local transformers judge (its scores are not comparable with published MT-bench).
    base_url (`str`): OpenAI-compatible endpoint (default: $OPENAI_BASE_URL or api.openai.com).
    api_key (`str`): default $OPENAI_API_KEY.
    parallel (`int`): concurrent judge requests, default 8.
    judge_file (`str`): judge prompts JSONL, default FastChat's packaged one.
    client: a ready judge client (`mt_bench_task.core.chat.ChatClient`); overrides the four above.
    judge_repeats (`int`): judge each match K times (default 1); the result's judge_sd is then
        the judge's spread (see `mt-bench show --json`).
    bench (`str`): "mt_bench" (default), "vicuna_bench", or a bench folder in FastChat's layout
        (question.jsonl, reference_answer/<judge>.jsonl, judge_prompts.jsonl): whose references,
        judge prompts and reference-needing categories the judge uses.
    references (`str`): at load time, which reference answers fill the math/reasoning/coding
        prompts: None (default, FastChat's: the judge's reference file), "inline" (the questions'
        own inline `reference` lists) or a FastChat reference file's path; any choice is recorded
        in every judgment and makes the result not comparable with published MT-bench.
Args:
    predictions (`list` of `list` of `str`): the answer to each question, one text per turn.
    references (`list` of `dict`): the questions (rows of the dataset's "question" config):
        question_id, category, turns, reference.
    model_id (`str`): the model's name in the judgment records, default "model".
    baseline_predictions (`list` of `list` of `str`, or `dict` question_id -> turns): pairwise
        only; default: the packaged official answers of `baseline_model`.
    baseline_model (`str`): the baseline's name, default "gpt-3.5-turbo".
    return_judgments (`bool`): also return the raw judgment records (FastChat's JSONL rows).
Returns:
    single: score, turn_1, turn_2 (mean ratings), categories ({category: mean}), n (ratings),
        n_failed (judgments without a rating, excluded), ci95 (bootstrap CI of score),
        judge_repeats, judge_sd (mean sample sd of one match's ratings; None when K = 1).
    both: judge (its name), comparable (False unless gpt-4 with FastChat's prompts through an
        API), label ("judged by X: not comparable with published MT-bench", or None).
    pairwise: win, loss, tie, win_rate, loss_rate, win_rate_adjusted, consistency, n, n_failed,
        turn_1 and turn_2 (the same rates per turn), categories ({category: rates}).
Examples:
    A stand-in judge (a `ChatClientBase` with FastChat's `complete` coroutine), so this runs offline:

    >>> import evaluate
    >>> from datasets import load_dataset
    >>> from mt_bench_task import dataset_path
    >>> from mt_bench_task.core.chat import ChatClientBase, Completion
    >>> class FakeJudge(ChatClientBase):
    ...     async def complete(self, model, messages, *, temperature, max_tokens):
    ...         if "Assistant B" in messages[-1]["content"]:
    ...             return Completion("[[C]]")  # pairwise prompt: a tie
    ...         multi_turn = "Conversation with User" in messages[-1]["content"]
    ...         return Completion("Rating: [[6]]" if multi_turn else "Rating: [[9]]")
    >>> questions = load_dataset(str(dataset_path()), "question", split="train").select(range(2))
    >>> answers = [["Aloha! ...", "A Hawaii trip ..."], ["Dear boss, ...", "Critique: ..."]]

    Single grading:

    >>> judge = evaluate.load("mt_bench_judge", "single", client=FakeJudge())
    >>> results = judge.compute(predictions=answers, references=list(questions))
    >>> print(results["score"], results["turn_1"], results["turn_2"], results["categories"])
    7.5 9.0 6.0 {'writing': 7.5}

    Pairwise against gpt-3.5-turbo's official answers, keeping the judgments:

    >>> judge = evaluate.load("mt_bench_judge", "pairwise", client=FakeJudge())
    >>> results = judge.compute(predictions=answers, references=list(questions),
    ...                         model_id="my-model", return_judgments=True)
    >>> print(results["win_rate_adjusted"], results["tie"], results["consistency"])
    0.5 4 1.0
    >>> print(len(results["judgments"]), results["judgments"][0]["model_2"])
    4 gpt-3.5-turbo
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MtBenchJudge(evaluate.Metric):
    """MT-bench judge (FastChat llm_judge), configs `single` and `pairwise`."""

    def __init__(self, judge_model="gpt-4", base_url=None, api_key=None, parallel=8,
                 judge_file=None, client=None, judge_repeats=1, bench="mt_bench", references=None,
                 calibration=None, **kwargs):
        # evaluate.load passes unknown kwargs here and the base class drops them: keep the judge's
        super().__init__(**kwargs)
        self.judge = metric.JudgeSettings(judge_model, base_url, api_key, parallel, judge_file,
                                          client, judge_repeats, bench, references, calibration)

    def _info(self):
        metric.mode_for(self.config_name)  # rejects unknown config names
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=metric.features(),
            codebase_urls=["https://github.com/lm-sys/FastChat/tree/main/fastchat/llm_judge"],
            reference_urls=["https://arxiv.org/abs/2306.05685"],
        )

    def _compute(self, predictions, references, model_id="model", baseline_predictions=None,
                 baseline_model=metric.DEFAULT_BASELINE, return_judgments=False):
        return metric.compute(predictions, references, mode=metric.mode_for(self.config_name),
                              judge=self.judge, model_id=model_id,
                              baseline_predictions=baseline_predictions,
                              baseline_model=baseline_model, return_judgments=return_judgments)
