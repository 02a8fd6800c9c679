"""Structured logs: one JSON object per line on stderr, for journald, Docker or any collector.

Call sites log an event name and fields: ``log.info("relay.listening", extra=fields(port=N))``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_FIELDS = "fm_fields"


def fields(**values: Any) -> dict[str, Any]:
    return {_FIELDS: values}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        body: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
            "logger": record.name,
        }
        body.update(getattr(record, _FIELDS, {}))
        if record.exc_info:
            body["error"] = self.formatException(record.exc_info)
        return json.dumps(body, default=str, ensure_ascii=False)


def configure(level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger("focusmate")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # the websockets library logs handshake noise from scanners at INFO; keep errors only
    logging.getLogger("websockets").setLevel(logging.ERROR)
