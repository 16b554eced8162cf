"""Question ids as benches write them (81, "81", "81_DE") and the one rule that matches them."""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

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
