"""Optional OpenTelemetry spans: ingestion → queue → step → provider call → tool.

Off by default. `MEZZO_TRACING=console` prints spans, `otlp` exports them over OTLP/HTTP
(`OTEL_EXPORTER_OTLP_ENDPOINT`; needs `opentelemetry-exporter-otlp-proto-http`). The trace
crosses processes inside the job: the submit span's context rides in the job payload
(`traceparent`), and the worker's step span continues it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import propagate, trace
except ImportError:  # the `trace` extra is not installed
    trace = None  # type: ignore[assignment]

_enabled = False


class TracingError(RuntimeError):
    pass


def configure_tracing(mode: str | None = None, *, exporter: Any = None) -> bool:
    """Turn tracing on for this process. Returns whether it is on."""
    global _enabled
    mode = (mode if mode is not None else os.environ.get("MEZZO_TRACING", "")).strip().lower()
    if exporter is None and mode in ("", "off", "none"):
        return _enabled
    if trace is None:
        raise TracingError(
            "MEZZO_TRACING is set but OpenTelemetry is not installed: pip install 'mezzo[trace]'"
        )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    if exporter is not None:
        processor: Any = SimpleSpanProcessor(exporter)
    elif mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        processor = BatchSpanProcessor(ConsoleSpanExporter())
    elif mode == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingError(
                "MEZZO_TRACING=otlp needs: pip install opentelemetry-exporter-otlp-proto-http"
            ) from None
        processor = BatchSpanProcessor(OTLPSpanExporter())
    else:
        raise TracingError(f"MEZZO_TRACING={mode!r}: use console, otlp or leave it unset")
    provider = TracerProvider(resource=Resource.create({"service.name": "mezzo"}))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    _enabled = True
    return True


def enabled() -> bool:
    return _enabled


@contextlib.contextmanager
def span(name: str, carrier: dict[str, str] | None = None, **attributes: Any) -> Iterator[None]:
    """A span around a block; with `carrier`, it continues the trace carried there."""
    if not _enabled or trace is None:
        yield
        return
    token = None
    if carrier:
        token = otel_context.attach(propagate.extract(carrier))
    try:
        clean = {k: v for k, v in attributes.items() if v is not None}
        with trace.get_tracer("mezzo").start_as_current_span(name, attributes=clean):
            yield
    finally:
        if token is not None:
            otel_context.detach(token)


def carrier() -> dict[str, str]:
    """The current trace context, to put in a job so the worker continues the trace."""
    if not _enabled or trace is None:
        return {}
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers
