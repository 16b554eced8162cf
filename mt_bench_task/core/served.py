"""Which model actually served the judge: the `served_model` records keep (the response's
`model`, e.g. `gpt-4-0613` for the `gpt-4` alias, which drifts: FastChat #2284). A record gets the
key only when the server named another model than the one asked for (OpenAI always answers with
the snapshot; a server that echoes the name leaves FastChat's record unchanged), so a record
without it was served by its judge's name.

`show`, the report and the model card name it next to the judge, and say when one judgment file's
records were served by more than one model (the alias moved during a run, or between runs).
"""
from __future__ import annotations

from collections.abc import Iterable

from mt_bench_task.core.types import Judgment

SERVED_KEY = "served_model"


def served_models(records: Iterable[Judgment]) -> list[str]:
    """The distinct models that served these records, sorted; [] when none recorded one."""
    names: set[str] = set()
    asked: set[str] = set()  # judges of records without the key: served by that name
    for r in records:
        if r.failed:  # "$ERROR$": nothing served it
            continue
        value = (getattr(r, "extra", None) or {}).get(SERVED_KEY)
        if isinstance(value, str) and value:
            names.update(v.strip() for v in value.split(",") if v.strip())
        else:
            asked.add(r.judge[0])
    return sorted(names | asked) if names else []


def served_suffix(served: list[str]) -> str:
    """" (served by gpt-4-0613)" to follow the judge's name; "" when unknown."""
    return f" (served by {', '.join(served)})" if served else ""


def mixed_note(served: list[str]) -> str | None:
    """The warning when the records were served by more than one model, else None."""
    if len(served) < 2:
        return None
    return (f"these judgments were served by {len(served)} different models "
            f"({', '.join(served)}): the judge changed during or between runs")
