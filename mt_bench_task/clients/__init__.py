"""Judge clients behind `core.chat.ChatClient`: an OpenAI-compatible endpoint, the local judge.
`make_client` is the only place they are made; the judging job is handed the client."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mt_bench_task.core.chat import ChatClient
    from mt_bench_task.core.judge_spec import JudgeSpec
    from mt_bench_task.engine.config import EngineOptions
    from mt_bench_task.engine.registry import Backend


def make_client(spec: JudgeSpec, *, base_url: str | None = None, api_key: str | None = None,
                local_engine: Backend | str = "hf", local_options: EngineOptions | None = None,
                local_max_new_tokens: int | None = None, timeout: float | None = None
                ) -> ChatClient:
    """The only place judge clients are made. A local judge runs on `local_engine`: the
    command's engine, or its name ('hf', 'vllm' or 'auto', as for generation); `timeout`:
    seconds per API request (`api_client`)."""
    if spec.local:
        from mt_bench_task.clients.local_judge import LocalJudgeClient
        from mt_bench_task.engine.config import EngineOptions
        from mt_bench_task.engine.registry import engine_backend

        backend = engine_backend(local_engine) if isinstance(local_engine, str) else local_engine
        options = local_options or EngineOptions()
        backend.check_judge(options)  # exit 2 now, not a failed judgment per call
        return LocalJudgeClient(spec.name, engine=backend, options=options,
                                max_new_tokens=local_max_new_tokens)
    from mt_bench_task.clients.anthropic_rules import is_claude

    if is_claude(spec.api_model) and not base_url:  # with a base URL: an OpenAI-style gateway
        from mt_bench_task.clients.anthropic_client import AnthropicChatClient

        return AnthropicChatClient(api_key=api_key)
    return api_client(base_url, api_key, timeout)


def api_client(base_url: str | None = None, api_key: str | None = None,
               timeout: float | None = None) -> ChatClient:
    """An OpenAI-compatible client; `timeout` (seconds for one answer, default the client's
    120) must be > 0."""
    from mt_bench_task.clients.openai_client import OpenAIChatClient
    from mt_bench_task.core.errors import ParameterError

    if timeout is None:
        return OpenAIChatClient(base_url=base_url, api_key=api_key)
    if not timeout > 0:
        raise ParameterError(f"request_timeout must be > 0 seconds, got {timeout:g}",
                             "request_timeout")
    return OpenAIChatClient(base_url=base_url, api_key=api_key, timeout=timeout)
