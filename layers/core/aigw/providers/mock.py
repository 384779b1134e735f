"""The built-in mock model: deterministic answers with no network, for demos and tests.

``mock/echo`` answers ``Echo: <last user message>`` and reports token usage estimated
the same way the gateway estimates prompts, so metering can be checked end to end. Like a real
vendor it honours the output limit: a longer answer is cut there, with ``finish_reason:
"length"``, so a limit (the caller's, or the plan's default) is visible locally.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from aigw import clock
from aigw.chat import (
    AssistantMessage,
    ChatCompletion,
    ChatCompletionChunk,
    ChatRequest,
    Choice,
    ChunkChoice,
    ChunkDelta,
    ModelInfo,
    Usage,
    new_completion_id,
)
from aigw.tokens import estimate_messages, estimate_text


class MockProvider:
    name = "mock"

    def complete(self, model: ModelInfo, request: ChatRequest) -> ChatCompletion:
        last_user = next((m.text() for m in reversed(request.messages) if m.role == "user"), "")
        text = f"Echo: {last_user}"
        finish = "stop"
        limit = model.output_limit(request)
        if estimate_text(text) > limit:
            text = text[: limit * 4]
            while estimate_text(text) > limit:
                text = text[:-1]
            finish = "length"
        prompt_tokens = estimate_messages(request.messages)
        completion_tokens = estimate_text(text)
        return ChatCompletion(
            created=clock.now(),
            model=model.id,
            choices=[Choice(message=AssistantMessage(content=text), finish_reason=finish)],
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
        )

    def stream(self, model: ModelInfo, request: ChatRequest) -> Iterator[ChatCompletionChunk]:
        """The same answer as :meth:`complete`, a word at a time."""
        completion = self.complete(model, request)
        text = completion.choices[0].message.content or ""
        cid, created = new_completion_id(), completion.created

        def chunk(delta: ChunkDelta, finish: str | None = None) -> ChatCompletionChunk:
            choice = ChunkChoice(delta=delta, finish_reason=finish)
            return ChatCompletionChunk(id=cid, created=created, model=model.id, choices=[choice])

        def chunks() -> Iterator[ChatCompletionChunk]:
            yield chunk(ChunkDelta(role="assistant", content=""))
            for piece in re.findall(r"\S*\s*", text):
                if piece:
                    yield chunk(ChunkDelta(content=piece))
            yield chunk(ChunkDelta(), completion.choices[0].finish_reason)
            yield ChatCompletionChunk(
                id=cid, created=created, model=model.id, choices=[], usage=completion.usage
            )

        return chunks()


def create() -> MockProvider:
    return MockProvider()
