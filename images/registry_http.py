"""The registry client's HTTP seam: an opener that speaks HTTP(S) only, bodies read under a
cap, and the credentials ``docker login`` saved for a host (``--docker_config``, read as the
Docker engine seam reads it, see ``agent_runtime/docker_config.py``)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from agent_runtime.docker_config import DockerConfigError
from agent_runtime.docker_config import load as load_docker_config

from .errors import RegistryError

HUB_HOSTS = ("registry-1.docker.io", "index.docker.io", "docker.io")
CHUNK = 1 << 20


class RedirectHandler(urllib.request.HTTPRedirectHandler):
    """Follows redirects to ``http`` and ``https`` only (urllib's own also allows ``ftp``)."""

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to a {scheme or 'relative'}: "
                                         "URL refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener() -> urllib.request.OpenerDirector:
    """An opener that speaks only HTTP(S): no ``file:``, ``ftp:`` or ``data:`` handlers."""
    opener = urllib.request.OpenerDirector()
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(),
                    urllib.request.HTTPHandler(), urllib.request.HTTPSHandler(),
                    urllib.request.HTTPDefaultErrorHandler(), RedirectHandler(),
                    urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


OPENER = opener()


def read_capped(response: Any, limit: int, what: str) -> bytes:
    """The whole body of ``response``, or :class:`RegistryError` when it exceeds ``limit``."""
    chunks: list[bytes] = []
    total = 0
    while chunk := response.read(min(CHUNK, limit + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise RegistryError(f"{what} is larger than the {limit} byte limit "
                                f"({limit >> 20} MiB)")
    return b"".join(chunks)


def credentials(docker_config: str | None, host: str) -> str | None:
    """The base64 ``user:password`` that ``docker login`` saved for ``host``, if any."""
    try:
        config = load_docker_config(docker_config)
    except DockerConfigError as exc:
        raise RegistryError(str(exc)) from exc
    auths = config.get("auths") if config is not None else None
    for key, entry in (auths.items() if isinstance(auths, dict) else ()):
        key_host = urllib.parse.urlsplit(key).netloc if "://" in key else key.split("/")[0]
        if key_host == host or (host in HUB_HOSTS and key_host in HUB_HOSTS):
            auth = entry.get("auth") if isinstance(entry, dict) else None
            return auth if isinstance(auth, str) else None
    return None
