"""Azure OpenAI as the judge, through the openai SDK's own Azure client and its own variables.

When `AZURE_OPENAI_ENDPOINT` is set (and no base URL is given on purpose), the judge's requests go
to that resource with `AZURE_OPENAI_API_KEY` and `OPENAI_API_VERSION`, `--judge-model` naming the
deployment: the SDK sends chat requests to `/openai/deployments/<deployment>/chat/completions`,
files and batches to `/openai/files` and `/openai/batches`. The records keep the judge's name as
typed; the model Azure says served it is recorded (`served_model`) and decides comparability.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from mt_bench_task.core.errors import DataError

AZURE_BATCH_ENDPOINT = "/chat/completions"  # Azure's batch lines and batches name it so


@dataclass(frozen=True)
class AzureSettings:
    endpoint: str
    api_key: str
    api_version: str

    def __repr__(self) -> str:  # never the key
        return f"AzureSettings(endpoint={self.endpoint!r}, api_version={self.api_version!r})"


def azure_settings(base_url: str | None, api_key: str | None) -> AzureSettings | None:
    """The SDK's Azure variables, when AZURE_OPENAI_ENDPOINT is set and no base URL was given;
    a DataError (one line) when one of the others is missing."""
    endpoint = os.environ.get("AZURE_OPENAI_ENDPOINT")
    if base_url or not endpoint:
        return None
    key = api_key or os.environ.get("AZURE_OPENAI_API_KEY")
    version = os.environ.get("OPENAI_API_VERSION")
    missing = [n for n, v in (("AZURE_OPENAI_API_KEY", key), ("OPENAI_API_VERSION", version))
               if not v]
    if missing:
        raise DataError(f"AZURE_OPENAI_ENDPOINT is set, so the judge is Azure OpenAI, but "
                        f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set")
    return AzureSettings(endpoint.rstrip("/"), str(key), str(version))


def azure_sdk_client(settings: AzureSettings, timeout: float) -> Any:
    import openai

    # max_retries=0: the SDK's own retries would multiply ours
    return openai.AsyncAzureOpenAI(azure_endpoint=settings.endpoint, api_key=settings.api_key,
                                   api_version=settings.api_version, max_retries=0,
                                   timeout=timeout)
