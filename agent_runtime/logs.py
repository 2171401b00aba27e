"""Logging set-up shared by the daemons: one line per record, to stderr or ``--log_dir``."""

from __future__ import annotations

import logging
import os


def setup_logging(quiet: bool, log_dir: str | None, name: str) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(log_dir, f"{name}.log")))
    level = logging.WARNING if quiet else logging.INFO
    if _glog_verbosity() >= 1:
        level = logging.DEBUG  # GLOG_v=1, as users of Mesos turn its verbose logging on
    formatter = EscapingFormatter("%(asctime)s %(levelname).1s %(name)s] %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)
    logging.basicConfig(level=level, handlers=handlers)


# Control characters, escaped as Python writes them: a newline in a framework's name (anything
# a client sends) must not start a forged log line.
_ESCAPES = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7f]}
_ESCAPES.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


class EscapingFormatter(logging.Formatter):
    """One record, one line: the message's control characters are escaped (a traceback,
    which comes from us, is left as it is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # logging's name for it
        record.message = record.message.translate(_ESCAPES)
        return super().formatMessage(record)


def _glog_verbosity() -> int:
    try:
        return int(os.environ.get("GLOG_v", "0"))  # noqa: SIM112 - glog spells it so
    except ValueError:
        return 0
