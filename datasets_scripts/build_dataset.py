"""Build the HF dataset folders shipped inside the package (no loading script: datasets 5 refuses
them): `mt_bench` and `vicuna_bench`, FastChat's two benches. It copies FastChat's data files byte
for byte and writes the dataset card with its `configs:` / `dataset_info:` YAML, so
`load_dataset(folder, "question", split="train")` works offline and the folder can be pushed to
the Hub as it is (`mt-bench push-dataset`).

    python datasets_scripts/build_dataset.py --source ../shared/mt_bench_data
    python datasets_scripts/build_dataset.py --bench vicuna_bench --source ../shared/vicuna_bench_data

Source: lm-sys/FastChat fastchat/llm_judge/data/ @ 0e6d3e4 (Apache-2.0). FastChat keeps one
judge_prompts.jsonl for all benches; it ships once, in the mt_bench folder.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

PACKAGE_DATA = Path(__file__).resolve().parent.parent / "mt_bench_task" / "data"
OUT = PACKAGE_DATA / "mt_bench"
SHA256 = {  # of the upstream files; a copy that differs (a fixed typo) changes the scores
    "question.jsonl": "119565adbab82227089cefdb44c8d7e2cf04dc0a0ec233634c82e7d4e2a944f7",
    "reference_answer/gpt-4.jsonl": "f957a5bc977badb66885ec970e6cd08527845780313f0995764260e5777b9b3f",
    "judge_prompts.jsonl": "fd283293406d024f44c174b094ef48031d0687a4682fd3a56b29b138f80281b6",
}
TARGET = {
    "question.jsonl": "data/question.jsonl",
    "reference_answer/gpt-4.jsonl": "data/reference_answer_gpt-4.jsonl",
    "judge_prompts.jsonl": "data/judge_prompts.jsonl",
}

CARD = """---
license: apache-2.0
pretty_name: MT-bench
language:
- en
task_categories:
- text-generation
size_categories:
- n<1K
tags:
- llm-as-a-judge
- mt-bench
configs:
- config_name: question
  default: true
  data_files:
  - split: train
    path: data/question.jsonl
- config_name: reference_answer
  data_files:
  - split: gpt_4
    path: data/reference_answer_gpt-4.jsonl
- config_name: judge_prompts
  data_files:
  - split: train
    path: data/judge_prompts.jsonl
dataset_info:
- config_name: question
  features:
  - name: question_id
    dtype: int64
  - name: category
    dtype: string
  - name: turns
    list: string
  - name: reference
    list: string
- config_name: reference_answer
  features:
  - name: question_id
    dtype: int64
  - name: answer_id
    dtype: string
  - name: model_id
    dtype: string
  - name: choices
    list:
    - name: index
      dtype: int64
    - name: turns
      list: string
  - name: tstamp
    dtype: float64
- config_name: judge_prompts
  features:
  - name: name
    dtype: string
  - name: type
    dtype: string
  - name: system_prompt
    dtype: string
  - name: prompt_template
    dtype: string
  - name: description
    dtype: string
  - name: category
    dtype: string
  - name: output_format
    dtype: string
---

# MT-bench

80 two-turn questions in 8 categories (writing, roleplay, reasoning, math, coding, extraction,
stem, humanities; 10 each, ids 81-160), the 30 GPT-4 reference answers FastChat's judge uses for
math, reasoning and coding, and FastChat's 8 judge prompts.

| config | split | rows |
| --- | --- | --- |
| `question` | `train` | 80 |
| `reference_answer` | `gpt_4` | 30 |
| `judge_prompts` | `train` | 8 |

The files are FastChat's, unchanged, typos included (they matter for score comparability).

```python
from datasets import load_dataset
from mt_bench_task import dataset_path
questions = load_dataset(str(dataset_path()), "question", split="train")
```

## Source and licence

lm-sys/FastChat, `fastchat/llm_judge/data/` at commit 0e6d3e4beaab66f4d3f93db72541a4abab8af28d,
Apache-2.0. sha256: {sums}

## Citation

```bibtex
@inproceedings{{zheng2023judging,
  title={{Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena}},
  author={{Zheng, Lianmin and Chiang, Wei-Lin and Sheng, Ying and Zhuang, Siyuan and Wu, Zhanghao
          and Zhuang, Yonghao and Lin, Zi and Li, Zhuohan and Li, Dacheng and Xing, Eric P. and
          Zhang, Hao and Gonzalez, Joseph E. and Stoica, Ion}},
  booktitle={{NeurIPS Datasets and Benchmarks Track}},
  year={{2023}}
}}
```
"""


VICUNA_SHA256 = {
    "question.jsonl": "c248c5c98ba45bb0c2aadae2f270e643bd32679c6c306a3b2a503ac4254cdaa5",
    "reference_answer/gpt-4.jsonl": "f7542dc25a5a869b32197486f5699a14eb5682ab3c7264518402399ec09ab470",
}
_CONFIGS_AND_FEATURES = CARD.split("- config_name: judge_prompts\n  data_files:")[0]
_REFERENCE_FEATURES = CARD.split("- config_name: reference_answer\n  features:")[1].split(
    "- config_name: judge_prompts")[0]
VICUNA_CARD = (_CONFIGS_AND_FEATURES.replace("pretty_name: MT-bench", "pretty_name: Vicuna bench")
               .replace("- mt-bench\n", "- mt-bench\n- vicuna-bench\n")
               + "dataset_info:\n" + CARD.split("dataset_info:\n")[1].split(
                   "- config_name: reference_answer")[0]
               + "- config_name: reference_answer\n  features:" + _REFERENCE_FEATURES
               + """---

# Vicuna bench

FastChat's second `llm_judge` bench: the 80 single-turn questions of the Vicuna blog post in 9
categories (generic, knowledge, roleplay, common-sense, fermi, counterfactual, writing: 10 each;
coding 7, math 3; ids 1-80), and the 10 GPT-4 reference answers FastChat's judge uses for the
coding and math questions (ids 61-70). The judge prompts are MT-bench's (FastChat keeps one
judge_prompts.jsonl for all benches); single-turn questions use only the single-turn prompts.

| config | split | rows |
| --- | --- | --- |
| `question` | `train` | 80 |
| `reference_answer` | `gpt_4` | 10 |

```python
from datasets import load_dataset
from mt_bench_task.core.bench import dataset_path
questions = load_dataset(str(dataset_path("vicuna_bench")), "question", split="train")
```

## Source and licence

lm-sys/FastChat, `fastchat/llm_judge/data/vicuna_bench/`, unchanged, as found at
Stefanstud/FastChat @ 1f5a7b81d3b219f12c18b37511de898556dfa90f (a fork whose MT-bench files are
byte-identical to FastChat's), Apache-2.0. sha256: {sums}
""")
BENCHES = {  # bench -> (sha256 of the upstream files, card, default output folder)
    "mt_bench": (SHA256, CARD, OUT),
    "vicuna_bench": (VICUNA_SHA256, VICUNA_CARD, PACKAGE_DATA / "vicuna_bench"),
}


def build(source: Path, out: Path = OUT, bench: str = "mt_bench") -> None:
    sha256, card_template, _ = BENCHES[bench]
    for name, sha in sha256.items():
        got = hashlib.sha256((source / name).read_bytes()).hexdigest()
        if got != sha:
            raise SystemExit(f"{source / name}: sha256 {got} differs from FastChat's {sha}")
        (out / TARGET[name]).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, out / TARGET[name])
    sums = "; ".join(f"`{n}` {s}" for n, s in sha256.items())
    # str.format would trip over the YAML braces, so only the {sums} slot is substituted
    card = card_template.replace("{sums}", sums).replace("{{", "{").replace("}}", "}")
    (out / "README.md").write_text(card, encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", type=Path, required=True, help="folder with FastChat's data files")
    ap.add_argument("--bench", choices=sorted(BENCHES), default="mt_bench")
    ap.add_argument("--out", type=Path, default=None, help="default: the packaged folder")
    args = ap.parse_args()
    build(args.source, args.out or BENCHES[args.bench][2], args.bench)
