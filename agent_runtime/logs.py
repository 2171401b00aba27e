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
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname).1s %(name)s] %(message)s",
        handlers=handlers,
    )


def _glog_verbosity() -> int:
    try:
        return int(os.environ.get("GLOG_v", "0"))  # noqa: SIM112 - glog spells it so
    except ValueError:
        return 0
