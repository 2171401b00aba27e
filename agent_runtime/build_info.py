"""What ``/version`` and ``/state`` say about this build, for both daemons.

Mesos stamps its build time when it compiles; we have no build step, so the build is the
installed package: its time is when ``agent_runtime`` was installed (the mtime of this package),
which Mesos's web UI shows as "Built ... ago". The git keys stay empty outside a release.
"""

from __future__ import annotations

import datetime
import os
from typing import Any

from agent_runtime import __version__


def _build_time() -> float:
    try:
        return os.stat(os.path.dirname(os.path.abspath(__file__))).st_mtime
    except OSError:
        return 0.0


BUILD_TIME = _build_time()


def version_json() -> dict[str, Any]:
    when = datetime.datetime.fromtimestamp(BUILD_TIME, datetime.UTC)
    return {
        "version": __version__,
        "build_date": when.strftime("%Y-%m-%d %H:%M:%S"),
        "build_time": BUILD_TIME,
        "build_user": "",
        "git_sha": "",
        "git_branch": "",
        "git_tag": "",
    }


__all__ = ["BUILD_TIME", "version_json"]
