"""Message content capture: prompts and completions, recorded only when the user opts in.

With ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` at ``SPAN_ONLY`` / ``EVENT_ONLY`` /
``SPAN_AND_EVENT`` (see :mod:`l0.observability.settings`), the ``chat`` span of a completed call
gets ``gen_ai.output.messages`` (the winning attempt's text and tool calls, i.e.
``state.content``) and, when the target carries the request (integrations fill
``Target.request``), ``gen_ai.input.messages`` and ``gen_ai.system_instructions``, in the
GenAI JSON message schema; or the same as one ``gen_ai.client.inference.operation.details``
log event. Only ``messages``/``input``/``instructions`` of a request are read: API keys and
headers never reach telemetry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

import orjson
from opentelemetry import trace
from opentelemetry._logs import LogRecord

from l0.observability import semconv as sc
from l0.observability.settings import ContentCapture, content_capture

if TYPE_CHECKING:
    from l0.observability.phase import Phase
    from l0.types import State

__all__ = ["capturing", "messages", "record"]

Messages = dict[str, list[dict[str, Any]]]
"""``{"gen_ai.input.messages": [...], "gen_ai.output.messages": [...], ...}``."""


def capturing() -> bool:
    """Whether any content is to be recorded (cheap: a settings lookup)."""
    return content_capture() is not ContentCapture.NO_CONTENT


def messages(request: Mapping[str, Any], state: State) -> Messages:
    """The content of a completed chat call, in the GenAI message schema."""
    parts: list[dict[str, Any]] = []
    if state.content:
        parts.append({"type": "text", "content": state.content})
    for call in state.tool_calls:
        parts.append(
            {
                "type": "tool_call",
                "id": call.id,
                "name": call.name,
                "arguments": call.parsed_arguments
                if call.parsed_arguments is not None
                else call.arguments,
            }
        )
    output = {"role": "assistant", "parts": parts, "finish_reason": state.finish_reason or "stop"}
    found: Messages = {sc.GEN_AI_OUTPUT_MESSAGES: [output]}
    system, inputs = _inputs(request)
    if inputs:
        found[sc.GEN_AI_INPUT_MESSAGES] = inputs
    if system:
        found[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = system
    return found


def _inputs(request: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """System instructions and input messages of an OpenAI-style (Chat Completions or
    Responses) request."""
    system: list[dict[str, Any]] = []
    inputs: list[dict[str, Any]] = []
    if not request:
        return system, inputs
    instructions = request.get("instructions")
    if isinstance(instructions, str) and instructions:
        system.append({"type": "text", "content": instructions})
    raw = request.get("messages", request.get("input"))
    if isinstance(raw, str):
        inputs.append({"role": "user", "parts": [{"type": "text", "content": raw}]})
        return system, inputs
    if not isinstance(raw, Sequence):
        return system, inputs
    for message in raw:
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role") or "user")
        parts = _parts(message)
        if role in ("system", "developer"):
            system.extend(parts)
        else:
            inputs.append({"role": role, "parts": parts})
    return system, inputs


def _parts(message: Mapping[str, Any]) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if message.get("role") == "tool":
        return [
            {
                "type": "tool_call_response",
                "id": message.get("tool_call_id"),
                "response": message.get("content"),
            }
        ]
    body = message.get("content")
    if isinstance(body, str):
        parts.append({"type": "text", "content": body})
    elif isinstance(body, Sequence):
        for piece in body:
            if isinstance(piece, Mapping) and isinstance(piece.get("text"), str):
                parts.append({"type": "text", "content": piece["text"]})
            elif isinstance(piece, Mapping):
                # Images, audio, files: say what was there, not the bytes.
                parts.append({"type": str(piece.get("type") or "unknown")})
    for call in message.get("tool_calls") or ():
        if isinstance(call, Mapping):
            function = call.get("function") or {}
            parts.append(
                {
                    "type": "tool_call",
                    "id": call.get("id"),
                    "name": function.get("name") if isinstance(function, Mapping) else None,
                    "arguments": function.get("arguments")
                    if isinstance(function, Mapping)
                    else None,
                }
            )
    return parts


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


# Attributes that describe the call on the details event (the rest of a span's are l0's own).
_EVENT_KEYS = frozenset(
    {
        sc.GEN_AI_OPERATION_NAME,
        sc.GEN_AI_PROVIDER_NAME,
        sc.GEN_AI_REQUEST_MODEL,
        sc.GEN_AI_RESPONSE_ID,
        sc.GEN_AI_RESPONSE_MODEL,
        sc.GEN_AI_RESPONSE_FINISH_REASONS,
        sc.GEN_AI_USAGE_INPUT_TOKENS,
        sc.GEN_AI_USAGE_OUTPUT_TOKENS,
        sc.SERVER_ADDRESS,
        sc.SERVER_PORT,
        sc.ERROR_TYPE,
    }
)


def record(phase: Phase, content: Messages) -> None:
    """Record ``content`` for a ``chat`` phase that is ending, as the capture mode says."""
    mode = content_capture()
    if mode.on_span and phase.span.is_recording():
        for key, value in content.items():
            # Span attributes cannot hold structures: the convention's JSON string form.
            phase.span.set_attribute(key, _json(value))
    telemetry = phase.bus.telemetry
    if mode.as_event and telemetry.logs:
        attributes: dict[str, Any] = {
            k: v for k, v in (phase.attributes or {}).items() if k in _EVENT_KEYS
        }
        attributes.update(content)
        logger = telemetry.logger_provider.get_logger("l0")
        logger.emit(
            LogRecord(
                event_name=sc.EVENT_INFERENCE_DETAILS,
                # Structured values, as the convention asks of events (the SDK's log records
                # accept any value; the API's type says otherwise).
                attributes=cast(Any, attributes),
                context=trace.set_span_in_context(phase.span),
            )
        )
