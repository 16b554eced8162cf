"""Question ids as benches write them (81, "81", "81_DE") and the one rule that matches them;
model ids (`meta-llama/Llama-3.1-8B-Instruct`) and the one rule that names their answer files."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from mt_bench_task.core.errors import DataError

QuestionId = int | str  # as the bench's question.jsonl writes it: 81, "81", "81_DE"
_INTEGER = re.compile(r"[+-]?[0-9]+")


def question_key(question_id: QuestionId) -> QuestionId:
    """THE rule matching answers, judgments and references to questions: 1 and "1" are the same
    question (the Japanese forks cast every id with int(), which is what lets jp-stable's string-id
    reference file meet its int-id questions); any other string ("81_DE") is compared as written.
    Records keep their id as written; only lookups and resume keys use this."""
    if isinstance(question_id, str) and _INTEGER.fullmatch(question_id.strip()):
        return int(question_id)
    return question_id


def sort_question_keys(keys: Iterable[QuestionId], order: Sequence[QuestionId] = ()
                       ) -> list[QuestionId]:
    """FastChat's answer-file order (reorg_answer_file sorts by id): by number when every key is
    an integer; otherwise the question file's order (`order`: its keys in file order), keys not in
    it last, in the order given."""
    keys = list(keys)
    if all(isinstance(k, int) for k in keys):
        return sorted(keys)  # type: ignore[type-var]
    rank = {k: i for i, k in enumerate(order)}
    return sorted(keys, key=lambda k: rank.get(k, len(rank)))


def id_order(question_id: QuestionId) -> tuple[bool, int, str]:
    """A sort key for ids that may mix int and str (they do not compare): integers first, by
    value, then strings."""
    return (isinstance(question_id, str), question_id if isinstance(question_id, int) else 0,
            str(question_id))


def id_text(ids: Iterable[QuestionId]) -> list[QuestionId]:
    """Ids sorted for a message."""
    return sorted(ids, key=id_order)


# ---- model ids -> answer file names ----
_ESCAPED = re.compile(r"%(25|2F)")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def model_file_stem(model_id: str) -> str:
    """THE rule naming a model's answer file (without `.jsonl`): "/" becomes "%2F" and "%"
    becomes "%25", so a repo id is one flat file FastChat's glob finds, and the rule reverses
    exactly (`model_id_of_stem`); an id without "/" or "%" (every FastChat name) keeps its name.
    An id that cannot name a file inside the data dir is a DataError (`check_model_id`)."""
    check_model_id(model_id)
    return model_id.replace("%", "%25").replace("/", "%2F")


def model_id_of_stem(stem: str) -> str:
    """The model id an answer file's name stands for (`model_file_stem` reversed)."""
    return _ESCAPED.sub(lambda m: "%" if m.group(1) == "25" else "/", stem)


def check_model_id(model_id: str) -> None:
    """Refuse ids that would name no file, or one outside the data dir if used as a path (as
    FastChat does): empty, a control character (NUL), absolute, a "."/".." or empty segment."""
    why = None
    parts = re.split(r"[/\\]", model_id)
    if not model_id.strip():
        why = "it is empty"
    elif _CONTROL.search(model_id):
        why = "it holds a control character"
    elif model_id.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", model_id):
        why = "it is an absolute path"
    elif any(p in (".", "..") for p in parts):
        why = "it has a '.' or '..' path segment"
    elif "" in parts:
        why = "it has an empty path segment (leading, trailing or double '/')"
    if why:
        raise DataError(f"model id {model_id!r} cannot name an answer file: {why} "
                        "(use a repo id like org/name, or a plain name)")
