"""Hub I/O for publishing: the token, the current model card, and Hub errors as one-line
DataErrors that never show the token."""
from __future__ import annotations

from pathlib import Path

from mt_bench_task.core.errors import DataError


def get_token() -> str | None:
    from huggingface_hub import get_token as hub_token

    return hub_token()


def read_card(repo_id: str, revision: str | None, token: str | None,
              dry_run: bool) -> tuple[str | None, str | None]:
    """The current README text, or None for a new card (repo without README, or a dry run that
    cannot see the repo)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    try:
        path = hf_hub_download(repo_id, "README.md", revision=revision, token=token)
    except EntryNotFoundError:
        return None, None
    except Exception as e:
        if dry_run:  # a preview still helps; say what it is based on
            what = "not found" if isinstance(e, RepositoryNotFoundError) else "unreachable"
            return None, f"{repo_id} is {what}; showing a new card"
        raise hub_error(e, repo_id, revision, token) from e
    return Path(path).read_text(encoding="utf-8"), None


def hub_error(e: Exception, repo_id: str, revision: str | None, token: str | None) -> DataError:
    """One line, no token, and what to do."""
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    status = getattr(getattr(e, "response", None), "status_code", None)
    if status in (401, 403):
        msg = (f"{repo_id}: the Hub refused the token (HTTP {status}); set HF_TOKEN to a token with "
               "write access to this repo, or run `hf auth login`")
    elif isinstance(e, RevisionNotFoundError):
        msg = f"{repo_id}: revision {revision!r} not found"
    elif isinstance(e, RepositoryNotFoundError):
        msg = f"{repo_id}: repository not found (create it first, or check the name and token)"
    elif isinstance(e, HfHubHTTPError):
        detail = getattr(e, "server_message", None) or str(e)
        msg = f"{repo_id}: Hub request failed (HTTP {status}): {one_line(detail, token)}"
    elif isinstance(e, (LocalEntryNotFoundError, OSError)) or type(e).__module__.startswith("httpx"):
        msg = f"{repo_id}: cannot reach the Hub ({type(e).__name__}: {one_line(str(e), token)})"
    else:
        raise e
    return DataError(msg)


def one_line(text: str, token: str | None) -> str:
    text = " ".join(text.split())
    return text.replace(token, "***") if token else text
