"""The process's log output: one line per record, the message, then the fields passed as
``extra`` (an outbox message's id, kind and reason, ...) as JSON.

``logging.basicConfig(format="%(message)s")`` printed the message alone and dropped every
``extra`` field, which is where the gateway's log lines keep what they are about. Lines
without extra fields (the JSON access log's) are printed unchanged.
"""
import json
import logging

# what every LogRecord carries by itself; anything else came in through ``extra``
STANDARD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message", "asctime", "taskName"}


class ExtraFieldsFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(message)s")

    def formatMessage(self, record):   # before any traceback, which format() appends
        line = super().formatMessage(record)
        extra = {name: value for name, value in record.__dict__.items()
                 if name not in STANDARD_ATTRIBUTES and not name.startswith("_")}
        if not extra:
            return line
        return f"{line} {json.dumps(extra, default=str, separators=(',', ':'))}"


def configure_logging():
    """INFO and up to stderr with the extra fields, unless a host (a test runner, a
    logging configuration) set up the root logger already."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(ExtraFieldsFormatter())
    root.addHandler(handler)
    root.setLevel(logging.INFO)
