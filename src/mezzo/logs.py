"""mezzo's logs: standard `logging` records, rendered by structlog where mezzo is the program.

As a library (the embedded SDK) mezzo configures no logging. Every module logs through
`get_logger(__name__-like name)`: a structlog logger with key-value calls
(`log.info("job done", run=run)`) over the stdlib logger of that name, so each call becomes one
`logging.LogRecord` whose message is the event and whose extra attributes are the keys. Those
records go wherever the application sends `logging` records, and nowhere if it sends them
nowhere: the `mezzo` logger has a `NullHandler`, as the logging HOWTO asks of libraries, so not
even a warning reaches `logging.lastResort`.

`mezzo serve`, `worker` and `run` are programs: they call `configure_logging`, which renders
every record (mezzo's and other libraries') on stderr as a console line or a JSON line.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog
from structlog.typing import EventDict

ROOT_LOGGER = "mezzo"
logging.getLogger(ROOT_LOGGER).addHandler(logging.NullHandler())

# Attributes of every LogRecord: a key of the same name is renamed (`name` → `name_`) rather
# than make `logging` refuse the record.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _keep_record_attributes(_: Any, __: str, event: EventDict) -> EventDict:
    for key in [k for k in event if k in _RECORD_ATTRIBUTES]:
        if key not in ("exc_info", "stack_info", "stacklevel"):
            event[f"{key}_"] = event.pop(key)
    return event


_TO_RECORD: list[structlog.typing.Processor] = [
    structlog.stdlib.filter_by_level,  # a disabled level costs one check, nothing more
    structlog.contextvars.merge_contextvars,
    _keep_record_attributes,
    structlog.stdlib.render_to_log_kwargs,
]


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """The logger every mezzo module uses: key-value calls, stdlib records, no global setup."""
    if name != ROOT_LOGGER and not name.startswith(ROOT_LOGGER + "."):
        raise ValueError(f"mezzo's loggers live under {ROOT_LOGGER!r}, not {name!r}")
    logger: structlog.stdlib.BoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=_TO_RECORD,
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return logger


class _RenderingHandler(logging.StreamHandler):
    """The handler `configure_logging` installs (and replaces when called again)."""


def configure_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Render records on stderr: mezzo's at `level` (MEZZO_LOG_LEVEL, default info), other
    libraries' from warning up; console lines on a terminal, JSON lines otherwise
    (MEZZO_LOG_FORMAT=console|json). For programs only: a library never calls this."""
    level_name = (level or os.environ.get("MEZZO_LOG_LEVEL", "info")).upper()
    numeric = logging.getLevelName(level_name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    fmt = (
        fmt or os.environ.get("MEZZO_LOG_FORMAT") or ("console" if sys.stderr.isatty() else "json")
    )
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer()
    )
    handler = _RenderingHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RenderingHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger(ROOT_LOGGER).setLevel(numeric)
    # Code that still asks structlog itself for a logger ends up in the same records.
    structlog.configure(
        processors=_TO_RECORD,
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
