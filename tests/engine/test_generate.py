"""generate: batched answers equal batch-1 answers, resume, 2 processes, FastChat's file format.

Model tests use the embedded SmolLM2-135M in fp32 with greedy decoding (there, batched output is
token-for-token the unbatched one), 4 reasoning questions (temperature 0), 8 new tokens.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mt_bench_task.cli.main import main
from mt_bench_task.engine.base import clean_output as _clean_output
from mt_bench_task.engine.generate import GenerationConfig, generate_answers

FASTCHAT_KEYS = ["question_id", "answer_id", "model_id", "choices", "tstamp"]
GREEDY_SLICE = ["--question-begin", "20", "--question-end", "24"]  # ids 101-104, reasoning
GREEDY_IDS = [101, 102, 103, 104]


def _cfg(tmp_path: Path, **kw: Any) -> GenerationConfig:
    base = GenerationConfig(data_dir=tmp_path, question_begin=20, question_end=24,
                            max_new_token=8, dtype="float32")
    return replace(base, **kw)


def _turns_by_qid(path: Path) -> dict[int, list[list[str]]]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return {r["question_id"]: [c["turns"] for c in r["choices"]] for r in rows}


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path):
    """One 1-process run (batch 16) that several tests compare against."""
    cfg = _cfg(tmp_path_factory.mktemp("ref"))
    stats = generate_answers(cfg)
    return cfg, stats, cfg.output_path.read_bytes()


# ---- with the real model ----
@pytest.mark.slow
def test_run_writes_fastchat_lines_sorted(reference_run) -> None:
    cfg, stats, raw = reference_run
    assert cfg.output_path == cfg.data_dir / "model_answer" / "smollm2-135m-instruct.jsonl"
    assert stats.questions == 4 and 0 < stats.tokens <= 4 * 2 * 8 and stats.tokens_per_second > 0
    lines = raw.decode().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["question_id"] for r in rows] == GREEDY_IDS
    for line, row in zip(lines, rows):
        assert list(row) == FASTCHAT_KEYS
        # FastChat's keys first; each turn's finish reason beside them (thinking models: issue 31)
        assert [list(c) for c in row["choices"]] == [["index", "turns", "finish_reasons"]]
        assert line == json.dumps(row)  # json.dumps defaults, like FastChat
        assert row["model_id"] == "smollm2-135m-instruct" and len(row["answer_id"]) == 22
        turns = row["choices"][0]["turns"]
        assert len(turns) == 2 and all(t and t == t.strip() and "<|im_" not in t for t in turns)


@pytest.mark.slow
def test_batched_output_equals_batch_of_one(reference_run, tmp_path: Path) -> None:
    cfg, _, _ = reference_run
    single = replace(cfg, data_dir=tmp_path, batch_size=1)
    generate_answers(single)
    assert _turns_by_qid(single.output_path) == _turns_by_qid(cfg.output_path)


@pytest.mark.slow
def test_resume_skips_answered_and_completes_partial_file(reference_run, tmp_path: Path) -> None:
    cfg, _, raw = reference_run
    cfg = replace(cfg, data_dir=tmp_path)
    out = cfg.output_path
    out.parent.mkdir(parents=True)
    lines = raw.decode().splitlines()
    one_turn = json.loads(lines[1])
    one_turn["choices"][0]["turns"] = one_turn["choices"][0]["turns"][:1]  # 102: turn 2 missing
    out.write_text("\n".join([lines[2], json.dumps(one_turn), lines[0]]) + "\n")  # 103, 102, 101

    stats = generate_answers(cfg)
    assert stats.questions == 2  # 102 (incomplete) and 104 (absent)
    new_lines = out.read_text().splitlines()
    assert [json.loads(x)["question_id"] for x in new_lines] == GREEDY_IDS
    assert new_lines[0] == lines[0] and new_lines[2] == lines[2]  # kept byte for byte
    assert _turns_by_qid(out) == _turns_by_qid(reference_run[0].output_path)

    before = out.read_bytes()
    assert generate_answers(cfg).questions == 0
    assert out.read_bytes() == before


@pytest.mark.slow
def test_two_processes_equal_one_process(mt_bench, reference_run, tmp_path: Path) -> None:
    cfg, _, _ = reference_run
    result = mt_bench("gen", "--data-dir", tmp_path, *GREEDY_SLICE, "--max-new-token", "8",
                      "--dtype", "float32", "--num-processes", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "generated 4 questions" in result.stdout
    out = tmp_path / "model_answer" / "smollm2-135m-instruct.jsonl"
    assert _turns_by_qid(out) == _turns_by_qid(cfg.output_path)
    assert [list(json.loads(x)) for x in out.read_text().splitlines()] == [FASTCHAT_KEYS] * 4


@pytest.mark.slow
def test_sampling_is_reproducible_per_choice_seed(default_model_dir: Path, tmp_path: Path) -> None:
    # writing questions sample at 0.7; two choices get seeds 0 and 1
    cfg = GenerationConfig(data_dir=tmp_path / "a", question_begin=0, question_end=1,
                           max_new_token=4, num_choices=2, dtype="float32")
    generate_answers(cfg)
    again = replace(cfg, data_dir=tmp_path / "b")
    generate_answers(again)
    first = _turns_by_qid(cfg.output_path)
    assert first == _turns_by_qid(again.output_path)
    assert all(len(choices) == 2 for choices in first.values())


@pytest.mark.slow
def test_clean_output_cuts_at_eos_and_drops_special_tokens(default_model_dir: Path) -> None:
    from mt_bench_task.engine.models import load_tokenizer

    tok = load_tokenizer(str(default_model_dir))
    ids = tok("  <|im_start|>Hello world", add_special_tokens=False)["input_ids"]
    text, n = _clean_output(tok, ids + [tok.eos_token_id] + tok(" tail")["input_ids"] + [2, 2],
                            {tok.eos_token_id})
    assert text == "Hello world" and n == len(ids)


@pytest.mark.slow
def test_cli_chat_template_file_makes_a_template_less_model_usable(
        model_dir_without_chat_template: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    model_dir = str(model_dir_without_chat_template)
    args = ["gen", "--model-path", model_dir, "--data-dir", str(tmp_path),
            "--question-begin", "20", "--question-end", "21", "--max-new-token", "4"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"model {model_dir} has no chat template; give a --chat-template file" in err
    template = tmp_path / "chatml.jinja"
    template.write_text("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}"
                        "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>"
                        "assistant\n{% endif %}")
    assert main(args + ["--chat-template", str(template)]) == 0
    out = tmp_path / "model_answer" / f"{model_dir_without_chat_template.name}.jsonl"
    assert list(_turns_by_qid(out)) == [101]


# ---- bad input, no model loaded ----
def test_cli_malformed_answer_file_names_line_and_leaves_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "model_answer" / "m.jsonl"
    out.parent.mkdir()
    good = json.dumps({"question_id": 101, "answer_id": "x", "model_id": "m",
                       "choices": [{"index": 0, "turns": ["a", "b"]}], "tstamp": 1.0})
    out.write_bytes((good + "\n{not json\n" + good + "\n").encode())
    before = out.read_bytes()
    assert main(["gen", "--model-id", "m", "--data-dir", str(tmp_path), *GREEDY_SLICE]) == 2
    assert f"{out}:2: malformed record" in capsys.readouterr().err
    assert out.read_bytes() == before


def test_cli_missing_model_path_is_a_clear_error(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-model"
    assert main(["gen", "--model-path", str(missing), "--data-dir", str(tmp_path),
                 *GREEDY_SLICE]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such directory" in err
    assert not (tmp_path / "model_answer").exists()


def test_cli_empty_question_range_says_so(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gen", "--data-dir", str(tmp_path), "--question-begin", "500"]) == 0
    assert "no questions selected" in capsys.readouterr().out
    assert not (tmp_path / "model_answer").exists()


@pytest.mark.parametrize("flag", ["--batch-size", "--num-choices", "--max-new-token"])
def test_cli_rejects_non_positive_counts(flag: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gen", "--data-dir", str(tmp_path), flag, "0"]) == 2
    assert f"{flag} must be >= 1" in capsys.readouterr().err


def test_help_does_not_import_torch() -> None:
    code = ("import sys\nfrom mt_bench_task.cli.main import main\n"
            "for argv in (['--help'], ['gen', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'accelerate') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
