"""Judge clients behind `core.chat.ChatClient`: an OpenAI-compatible endpoint, the local judge.
`make_client` is the only place they are made; the judging job is handed the client."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mt_bench_task.core.chat import ChatClient
    from mt_bench_task.core.judge_spec import JudgeSpec
    from mt_bench_task.engine.judge import EngineOptions


def make_client(spec: JudgeSpec, *, base_url: str | None = None, api_key: str | None = None,
                local_engine: str = "hf", local_options: EngineOptions | None = None,
                local_max_new_tokens: int | None = None) -> ChatClient:
    """The only place judge clients are made. A local judge runs on `local_engine` ('hf',
    'vllm' or 'auto', as for generation)."""
    if spec.local:
        from mt_bench_task.clients.local_judge import LocalJudgeClient
        from mt_bench_task.engine.base import choose_engine, require_vllm

        engine = choose_engine(local_engine)
        if engine == "vllm":
            require_vllm(local_options)  # exit 2 now, not a failed judgment per call
        return LocalJudgeClient(spec.name, engine=engine, options=local_options,
                                max_new_tokens=local_max_new_tokens)
    from mt_bench_task.clients.openai_client import OpenAIChatClient

    return OpenAIChatClient(base_url=base_url, api_key=api_key)
