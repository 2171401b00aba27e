"""Logging set-up shared by the daemons: one line per record, to stderr or ``--log_dir``."""

from __future__ import annotations

import logging
import os


def setup_logging(quiet: bool, log_dir: str | None, name: str) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_dir:
        os.makedirs(log_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(log_dir, f"{name}.log")))
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname).1s %(name)s] %(message)s",
        handlers=handlers,
    )
