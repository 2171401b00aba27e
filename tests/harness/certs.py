"""Throwaway certificate authorities for TLS tests, made with the ``openssl`` CLI (EC P-256
keys: quick to make), valid for a day, each certificate naming ``127.0.0.1`` and ``localhost``."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from tests.harness.needs import require

CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
LEAF = ("basicConstraints=CA:FALSE\nsubjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")


@dataclass(frozen=True)
class Pair:
    cert: str
    key: str


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Authority:
    """A CA under ``directory``; :meth:`issue` signs a leaf certificate with it."""

    def __init__(self, directory: str, name: str) -> None:
        require(shutil.which("openssl") is not None, "the openssl CLI")
        self.directory = directory
        self.name = name
        self.cert = os.path.join(directory, f"{name}.crt")
        self.key = os.path.join(directory, f"{name}.key")
        _openssl("req", "-x509", *CURVE, "-keyout", self.key, "-out", self.cert, "-days", "1",
                 "-subj", f"/CN={name}")

    def issue(self, name: str) -> Pair:
        base = os.path.join(self.directory, name)
        extensions = base + ".ext"
        with open(extensions, "w") as handle:
            handle.write(LEAF)
        _openssl("req", *CURVE, "-keyout", base + ".key", "-out", base + ".csr",
                 "-subj", f"/CN={name}")
        _openssl("x509", "-req", "-in", base + ".csr", "-CA", self.cert, "-CAkey", self.key,
                 "-CAcreateserial", "-out", base + ".crt", "-days", "1", "-extfile", extensions)
        return Pair(base + ".crt", base + ".key")
