"""Thin wrapper over the ``openai`` chat-completions client for any OpenAI-compatible server.

Retries of 429/5xx/timeouts (honouring ``Retry-After``) are left to the openai client. Whatever still
goes wrong, including malformed bodies (non-JSON, no choices, empty content), becomes an
:class:`LLMError`, so one bad answer never stops a run.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass

DEFAULT_BASE_URL = "https://dashscope.aliyuncs.com/compatible-mode/v1"
DEFAULT_KEY_ENV = "DASHSCOPE_API_KEY"
FALLBACK_KEY_ENV = "OPENAI_API_KEY"
_THINK = re.compile(r"<think>.*?</think>", re.DOTALL)


class LLMError(Exception):
    """A request that failed for good (after the client's retries) or returned an unusable body;
    ``connection`` is True when the server could not be reached at all."""

    def __init__(self, message: str, connection: bool = False):
        super().__init__(message)
        self.connection = connection


@dataclass(frozen=True)
class Completion:
    text: str
    usage: dict  # prompt_tokens, completion_tokens, total_tokens (ints; missing ones omitted)


def key_env_names(api_key_env: str) -> list[str]:
    """Environment variables consulted for the key, in order."""
    return [api_key_env] if api_key_env == FALLBACK_KEY_ENV else [api_key_env, FALLBACK_KEY_ENV]


def resolve_api_key(api_key_env: str = DEFAULT_KEY_ENV) -> str | None:
    """The key from ``api_key_env``, else from ``OPENAI_API_KEY``; None if neither is set."""
    for name in key_env_names(api_key_env):
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


class ChatClient:
    """Sends one chat completion per prompt; safe to share between threads."""

    def __init__(self, base_url: str, api_key: str, model: str, *, timeout: float = 60.0, max_retries: int = 3,
                 max_tokens: int = 200, temperature: float = 0.3, enable_thinking: bool = False):
        import openai  # imported here so dry runs and the missing-key path stay light

        self._api_key = api_key
        self._client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)
        self.model = model
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.enable_thinking = enable_thinking

    def redact(self, message: str) -> str:
        """Remove the key from a message in case a server echoed it back."""
        return message.replace(self._api_key, "***") if self._api_key else message

    def complete(self, system: str, prompt: str) -> Completion:
        """Return the answer text and token usage, or raise :class:`LLMError`."""
        try:
            raw = self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
                max_tokens=self.max_tokens,
                temperature=self.temperature,
                extra_body={"enable_thinking": self.enable_thinking},
            )
            body = raw.http_response.text
        except Exception as err:  # openai.APIError subclasses, httpx errors, anything else
            import openai

            raise LLMError(self.redact(f"{type(err).__name__}: {err}")[:500],
                           connection=isinstance(err, openai.APIConnectionError)) from None
        return parse_completion(body)

    def close(self) -> None:
        self._client.close()


def parse_completion(body: str) -> Completion:
    """Extract the first choice's content and the usage from a chat-completion body."""
    try:
        data = json.loads(body)
    except ValueError:
        raise LLMError(f"response is not JSON: {body[:200]!r}") from None
    if not isinstance(data, dict):
        raise LLMError(f"response is not a JSON object: {body[:200]!r}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise LLMError(f"response has no choices: {body[:200]!r}")
    message = choices[0].get("message")
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, str):
        raise LLMError(f"response has no message content: {body[:200]!r}")
    text = _THINK.sub("", content).strip()
    if not text:
        raise LLMError("response content is empty")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    usage = {k: int(v) for k, v in usage.items()
             if k in ("prompt_tokens", "completion_tokens", "total_tokens") and isinstance(v, (int, float))}
    return Completion(text, usage)
