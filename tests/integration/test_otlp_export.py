"""``l0 demo --otlp-endpoint URL`` on the wire: l0's spans reach an OTLP/HTTP receiver whole.

A receiver on loopback (what a Collector, Jaeger or Tempo listens with on :4318) decodes the
protobuf ``ExportTraceServiceRequest``s the demo posts to ``/v1/traces``. The spans must form
l0's tree (``l0.session`` → ``chat {model}`` → ``l0.attempt`` → ``l0.guardrails``), carry the
attributes the dashboards' TraceQL panels and the Collector's tail-sampling policies filter on,
and no message content.
"""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from l0.observability import semconv as sc

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


class Receiver:
    """An OTLP/HTTP trace receiver on a free loopback port."""

    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []
        self.content_types: list[str] = []
        received = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                received.requests.append(request)
                received.content_types.append(self.headers.get("Content-Type", ""))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """(resource attributes, span) for every span received."""
        found = []
        for request in self.requests:
            for resource_spans in request.resource_spans:
                resource = _attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append((resource, span))
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(v) for v in value.array_value.values)
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@pytest.fixture(scope="module")
def received() -> Iterator[Receiver]:
    receiver = Receiver()
    try:
        # The demo's dropped connection (3), dead primary with fallback (6) and guardrail
        # violation (7): retries, a fallback, a violation, errors on attempts.
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "l0.cli",
                "demo",
                "--otlp-endpoint",
                receiver.url,
                "--only",
                "3",
                "--only",
                "6",
                "--only",
                "7",
            ],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        yield receiver
    finally:
        receiver.close()


def test_spans_arrive_as_otlp_protobuf_with_the_service_name(received: Receiver) -> None:
    assert received.requests, "no OTLP export reached the receiver"
    assert all(t.startswith("application/x-protobuf") for t in received.content_types)
    spans = received.spans()
    assert spans
    for resource, _span in spans:
        assert resource["service.name"] == "l0-demo"
    for _resource, span in spans:
        assert len(span.trace_id) == 16 and len(span.span_id) == 8
        assert span.end_time_unix_nano >= span.start_time_unix_nano > 0


def test_every_session_arrives_as_a_whole_tree(received: Receiver) -> None:
    spans = [span for _, span in received.spans()]
    by_id = {span.span_id: span for span in spans}
    sessions = [s for s in spans if s.name == sc.SPAN_SESSION]
    assert len(sessions) == 3
    for span in spans:
        if span.name == sc.SPAN_SESSION:
            assert not span.parent_span_id
            continue
        parent = by_id.get(span.parent_span_id)
        assert parent is not None, f"{span.name}: its parent never arrived"
        assert parent.trace_id == span.trace_id
        expected = {
            "chat": sc.SPAN_SESSION,
            sc.SPAN_ATTEMPT: "chat",
            sc.SPAN_GUARDRAILS: sc.SPAN_ATTEMPT,
            sc.SPAN_GUARDRAILS_FINAL: sc.SPAN_ATTEMPT,
        }
        kind = "chat" if span.name.startswith("chat") else span.name
        assert parent.name.split(" ")[0] == expected[kind], (span.name, parent.name)
    for session in sessions:
        in_trace = [s for s in spans if s.trace_id == session.trace_id]
        names = {s.name.split(" ")[0] for s in in_trace}
        assert {sc.SPAN_SESSION, "chat", sc.SPAN_ATTEMPT} <= names
        attempts = [s for s in in_trace if s.name == sc.SPAN_ATTEMPT]
        assert _attributes(session.attributes)[sc.L0_ATTEMPTS] == len(attempts)
        for span in in_trace:
            assert sc.L0_OUTCOME in _attributes(span.attributes), span.name


def test_the_attributes_the_dashboards_and_sampling_filter_on_arrive(received: Receiver) -> None:
    spans = [span for _, span in received.spans()]
    attributes = [(span, _attributes(span.attributes)) for span in spans]

    def having(name: str) -> list[dict[str, Any]]:
        return [a for s, a in attributes if s.name.split(" ")[0] == name]

    sessions = having(sc.SPAN_SESSION)
    assert {a[sc.L0_OUTCOME] for a in sessions} == {"completed"}
    assert all(isinstance(a[sc.L0_STREAM_ID], str) for a in sessions)
    # "Sessions that fell back": l0.fallback.index > 0 on the session
    assert any(a[sc.L0_FALLBACK_INDEX] > 0 for a in sessions)
    # "Sessions that retried": l0.attempt.number > 1, with its reason
    attempts = having(sc.SPAN_ATTEMPT)
    assert any(a[sc.L0_ATTEMPT_NUMBER] > 1 for a in attempts)
    assert {a[sc.L0_ATTEMPT_REASON] for a in attempts} == {"initial", "retry", "fallback"}
    # failed attempts carry the error attributes and an ERROR status (tail sampling's policy)
    failed = [(s, a) for s, a in attributes if a.get(sc.L0_OUTCOME) == "error"]
    assert failed
    for span, attrs in failed:
        assert span.status.code == span.status.STATUS_CODE_ERROR
        if span.name.startswith(sc.SPAN_GUARDRAILS):
            continue  # the guardrail phase says which rule, not an error.type
        assert attrs.get(sc.ERROR_TYPE), span.name
        if span.name == sc.SPAN_ATTEMPT:
            assert attrs[sc.L0_ERROR_CATEGORY] and attrs[sc.L0_ERROR_CODE]
    # "Slow first chunk": gen_ai.response.time_to_first_chunk on chat spans (kind CLIENT)
    chats = [(s, a) for s, a in attributes if s.name.startswith("chat")]
    completed = [(s, a) for s, a in chats if a[sc.L0_OUTCOME] == "completed"]
    assert completed
    for span, attrs in completed:
        assert span.kind == span.SPAN_KIND_CLIENT
        assert attrs[sc.GEN_AI_OPERATION_NAME] == "chat"
        assert attrs[sc.GEN_AI_PROVIDER_NAME] == "openai"
        assert isinstance(attrs[sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK], float)
        assert attrs[sc.GEN_AI_RESPONSE_MODEL]
        assert attrs[sc.GEN_AI_USAGE_OUTPUT_TOKENS] > 0
    # guardrail violations: the tail-sampling key, and the span event
    guardrails = [(s, a) for s, a in attributes if s.name == sc.SPAN_GUARDRAILS]
    violated = [(s, a) for s, a in guardrails if a.get(sc.L0_GUARDRAIL_VIOLATIONS, 0) >= 1]
    assert violated
    events = [e for s, _ in violated for e in s.events if e.name == sc.EVENT_GUARDRAIL_RESULT]
    assert events
    assert _attributes(events[0].attributes)[sc.L0_GUARDRAIL_RULE] == "pattern"


def test_no_message_content_leaves_without_opt_in(received: Receiver) -> None:
    content = {sc.GEN_AI_INPUT_MESSAGES, sc.GEN_AI_OUTPUT_MESSAGES, sc.GEN_AI_SYSTEM_INSTRUCTIONS}
    for _, span in received.spans():
        assert not content & set(_attributes(span.attributes)), span.name
        for event in span.events:
            assert not content & set(_attributes(event.attributes)), event.name
