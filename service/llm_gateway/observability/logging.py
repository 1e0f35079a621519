"""JSON logs: one object per line, for this service and for gunicorn and uvicorn too.

Every line carries `timestamp` (UTC, ms), `level`, `logger`, `message` (a stable event name),
`request_id`, `trace_id`, `span_id`, `service` and `pid`; extra fields passed with
`logger.info("event_name", extra={...})` are added at the top level. Exceptions become an
`exception` field holding the traceback, never a multi-line tail.
"""

from __future__ import annotations

import logging
import logging.config
import sys
import threading
import time
import traceback
from types import TracebackType
from typing import Any

import orjson
from opentelemetry import trace

from llm_gateway.observability.context import request_id_var, user_var

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message", "taskName"}
)
_HANDLER_NAME = "json"
# Valid inside JSON strings, yet some log readers (and str.splitlines) end a line at them.
_LINE_BREAKERS = {ord(c): f"\\u{ord(c):04x}" for c in "\x1c\x1d\x1e\x85\u2028\u2029"}


_last_second: list[Any] = [None, ""]  # (epoch second, its formatted prefix): one strftime/s


def _utc_timestamp(created: float) -> str:
    seconds = int(created)
    millis = int((created - seconds) * 1000)
    cached_second, prefix = _last_second
    if cached_second != seconds:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second[:] = [seconds, prefix]
    return f"{prefix}.{millis:03d}Z"


def _json_default(value: Any) -> Any:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str = "llm-gateway") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        span_context = trace.get_current_span().get_span_context()
        payload: dict[str, Any] = {
            "timestamp": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or request_id_var.get(),
            "trace_id": format(span_context.trace_id, "032x") if span_context.is_valid else None,
            "span_id": format(span_context.span_id, "016x") if span_context.is_valid else None,
            "service": self.service,
            "pid": record.process,
        }
        user = user_var.get()
        if user is not None:
            payload["user"] = user
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRS and key not in payload:
                payload[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            payload["error_type"] = record.exc_info[0].__name__
            payload["exception"] = "".join(traceback.format_exception(*record.exc_info))
        elif record.exc_text:
            payload["exception"] = record.exc_text
        if record.stack_info:
            payload["stack"] = record.stack_info
        return orjson.dumps(payload, default=_json_default).decode().translate(_LINE_BREAKERS)


def logging_config(service: str, level: str) -> dict[str, Any]:
    """A dictConfig routing this service's, gunicorn's and uvicorn's loggers to one JSON handler.

    gunicorn takes it as `logconfig_dict`; `configure_logging` applies it in-process.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": JsonFormatter, "service": service},
        },
        "handlers": {
            _HANDLER_NAME: {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"level": level, "handlers": [_HANDLER_NAME]},
        "loggers": {
            # gunicorn and uvicorn attach their own handlers unless told otherwise.
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            # The access log middleware writes richer lines; these would duplicate them.
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": True},
            "uvicorn": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.error": {"level": level, "handlers": [], "propagate": True},
            "uvicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
            # Chatty libraries that would otherwise log every connection at INFO.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
            "urllib3": {"level": "WARNING"},
            "mlflow": {"level": "WARNING"},
        },
    }


def _log_uncaught(
    exc_type: type[BaseException],
    exc: BaseException,
    tb: TracebackType | None,
) -> None:
    logging.getLogger("llm_gateway").critical("uncaught_exception", exc_info=(exc_type, exc, tb))


def _log_uncaught_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("llm_gateway").critical(
        "uncaught_thread_exception",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
        extra={"thread": args.thread.name if args.thread else None},
    )


def configure_logging(service: str, level: str) -> None:
    """Make every line this process writes JSON: loggers, warnings and uncaught exceptions."""
    logging.config.dictConfig(logging_config(service, level))
    # The JSON lines carry no file/line/function, so skip the stack walk that finds the caller
    # for every record (the logging HOWTO's "Optimization" section; about a quarter of the cost
    # of an access-log line). Side effect: `stack_info=True` adds nothing in this process.
    logging._srcfile = None
    logging.captureWarnings(True)
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_thread
