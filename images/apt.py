"""The seam to Debian's package tools: apt-cache, apt-get, dpkg-deb.

Only the calls the image builder needs, each translated to :class:`AptError` with apt's own last
line of complaint. Nothing here installs a package on the host: ``apt-get download`` fetches
``.deb`` files into our cache and ``dpkg-deb --fsys-tarfile`` reads their content as a tar.

Downloaded files are checked against the hash apt's (signed) package lists give for them, and
reused from our cache or from apt's own ``/var/cache/apt/archives`` when they match, so a second
build needs no network.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from typing import Literal, TypeVar

from .errors import AptError

T = TypeVar("T")
UpdatePolicy = Literal["auto", "always", "never"]
APT_ARCHIVES = "/var/cache/apt/archives"
_DEPENDS_FLAGS = ["--no-recommends", "--no-suggests", "--no-conflicts", "--no-breaks",
                  "--no-replaces", "--no-enhances"]
_URI_LINE = re.compile(
    r"^'(?P<uri>[^']+)' (?P<file>\S+) (?P<size>\d+) (?P<hash>\S+):(?P<value>\S+)$")
_DEPENDS_LINE = re.compile(r"^ (?P<alt>[ |])(?:Pre)?Depends: (?P<name>\S+)$")


@dataclasses.dataclass(frozen=True)
class Package:
    """One ``.deb`` as apt's package lists describe it."""

    name: str
    version: str
    architecture: str
    filename: str  # apt's file name: name_version_arch.deb, the epoch's ':' written %3a
    size: int
    hash_name: str  # "sha256" (or "sha512")
    hash_value: str

    def __str__(self) -> str:
        return f"{self.name}={self.version}"


def is_library_package(name: str) -> bool:
    """Whether the builder follows a dependency on ``name``: shared-library packages only, so
    ``redis-tools`` brings ``libssl3`` but not ``adduser`` (and through it perl)."""
    return name.startswith("lib") and not name.endswith(("-dev", "-doc", "-bin"))


def parse_depends(output: str) -> dict[str, list[str]]:
    """``apt-cache depends`` output -> package -> the packages it depends on.

    Of an alternative (``|Depends: a`` then ``Depends: b``) only the first is kept, as apt would
    pick it; virtual packages (``<debconf-2.0>``) are left out: no library is virtual.
    """
    depends: dict[str, list[str]] = {}
    current: list[str] = []
    in_alternative = False
    for line in output.splitlines():
        if line and not line.startswith(" "):
            current = depends.setdefault(line.strip(), [])
            in_alternative = False
            continue
        match = _DEPENDS_LINE.match(line)
        if not match:
            continue  # providers of a virtual package, Recommends lines, ...
        name = match["name"].split(":")[0]  # "libc6:amd64" -> "libc6"
        if not in_alternative and not name.startswith("<"):
            current.append(name)
        in_alternative = match["alt"] == "|"
    return depends


def parse_print_uris(output: str) -> list[Package]:
    """``apt-get download --print-uris`` output -> the packages it would fetch."""
    packages = []
    for line in output.splitlines():
        match = _URI_LINE.match(line.strip())
        if not match:
            continue
        filename = match["file"]
        parts = filename.removesuffix(".deb").split("_")
        if len(parts) != 3:
            raise AptError(f"unexpected package file name {filename!r} from apt-get")
        name, version, arch = parts
        packages.append(Package(
            name=name, version=urllib.parse.unquote(version), architecture=arch,
            filename=filename, size=int(match["size"]),
            hash_name=match["hash"].lower().replace("-", ""), hash_value=match["value"].lower()))
    return packages


def library_closure(graph: dict[str, list[str]], roots: Sequence[str]) -> list[str]:
    """``roots`` and every library package they need, directly or through libraries."""
    seen, frontier = set(roots), list(roots)
    while frontier:
        for dep in graph.get(frontier.pop(), []):
            if is_library_package(dep) and dep not in seen:
                seen.add(dep)
                frontier.append(dep)
    return sorted(seen)


def _file_hash(path: str, hash_name: str) -> str:
    hasher = hashlib.new(hash_name)
    with open(path, "rb") as source:
        while chunk := source.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


class Apt:
    """apt on this host; ``.deb`` files are kept in ``deb_dir``."""

    def __init__(self, deb_dir: str, update: UpdatePolicy = "auto",
                 archives: Sequence[str] = (APT_ARCHIVES,)) -> None:
        self.deb_dir = deb_dir
        self.update_policy = update
        self.archives = tuple(archives)
        self._updated = False

    def _run(self, argv: Sequence[str], cwd: str | None = None) -> str:
        env = {**os.environ, "LC_ALL": "C", "DEBIAN_FRONTEND": "noninteractive"}
        try:
            done = subprocess.run(list(argv), cwd=cwd, env=env, capture_output=True, text=True,
                                  check=False)
        except FileNotFoundError as exc:
            raise AptError(f"{argv[0]} is not installed: building images needs Debian's apt "
                           "and dpkg") from exc
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if line.strip()]
            errors = [line for line in lines if line.startswith("E:")] or lines
            reason = errors[-1] if errors else f"exit status {done.returncode}"
            raise AptError(f"{' '.join(argv[:2])} failed: {reason}")
        return done.stdout

    def _apt_get(self, *args: str) -> list[str]:
        argv = ["apt-get", "-q"]
        if os.geteuid() == 0:
            # apt drops to the _apt user to download, which cannot write into root's cache.
            argv += ["-o", "APT::Sandbox::User=root"]
        return [*argv, *args]

    def update(self) -> None:
        if os.geteuid() != 0:
            raise AptError("apt's package lists need updating, which needs root: "
                           "run 'apt-get update' as root, then build again")
        self._run(self._apt_get("update"))
        self._updated = True

    def with_update(self, action: Callable[[], T]) -> T:
        """Run ``action``; under the ``auto`` policy, when apt cannot find or fetch a package
        (lists missing on a fresh machine, or stale after a point release), update and retry."""
        if self.update_policy == "always" and not self._updated:
            self.update()
        try:
            return action()
        except AptError as exc:
            if not self.may_update():
                raise
            if os.geteuid() != 0:
                raise AptError(f"{exc} (apt's package lists may be missing or stale: run "
                               "'apt-get update' as root)") from exc
        self.update()
        return action()

    @property
    def updated(self) -> bool:
        """Whether this run updated apt's package lists."""
        return self._updated

    def may_update(self) -> bool:
        """Whether a failure may still be retried after an ``apt-get update``."""
        return self.update_policy == "auto" and not self._updated

    def architecture(self) -> str:
        return self._run(["dpkg", "--print-architecture"]).strip()

    def dependency_graph(self, roots: Sequence[str]) -> dict[str, list[str]]:
        """Package -> its dependencies, for ``roots`` and everything they reach.

        One recursive ``apt-cache depends`` (every apt call costs ~0.7 s of cache loading) lists
        more than we want; :func:`library_closure` then follows library edges only.
        """
        graph = parse_depends(self._run(["apt-cache", "depends", "--recurse", *_DEPENDS_FLAGS,
                                         *roots]))
        missing = [name for name in roots if name not in graph]
        if missing:
            raise AptError(f"apt knows no package {missing[0]!r}")
        return graph

    def locate(self, names: Sequence[str]) -> list[Package]:
        """The exact files apt would download for ``names`` (its candidate versions)."""
        packages = parse_print_uris(self._run(self._apt_get("download", "--print-uris",
                                                            *names)))
        by_name = {package.name: package for package in packages}
        missing = [name for name in names if name not in by_name]
        if missing:
            raise AptError(f"apt-get offers no download for {', '.join(missing)}")
        return [by_name[name] for name in names]

    def cached(self, package: Package) -> str | None:
        """A local copy of ``package`` whose hash matches, if there is one."""
        for directory in (self.deb_dir, *self.archives):
            path = os.path.join(directory, package.filename)
            with contextlib.suppress(OSError):
                if _file_hash(path, package.hash_name) == package.hash_value:
                    return path
        return None

    def fetch(self, packages: Sequence[Package]) -> dict[str, str]:
        """Package name -> path of its verified ``.deb``, downloading only what is missing."""
        paths = {package.name: self.cached(package) for package in packages}
        missing = [package for package in packages if paths[package.name] is None]
        if missing:
            os.makedirs(self.deb_dir, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.deb_dir, prefix=".download-") as partial:
                self._run(self._apt_get("download", *map(str, missing)), cwd=partial)
                for package in missing:
                    path = os.path.join(partial, package.filename)
                    if not os.path.exists(path) or \
                            _file_hash(path, package.hash_name) != package.hash_value:
                        raise AptError(f"downloaded {package.filename} does not match the "
                                       f"{package.hash_name} in apt's package lists")
                    final = os.path.join(self.deb_dir, package.filename)
                    shutil.move(path, final)
                    paths[package.name] = final
        return {name: path for name, path in paths.items() if path is not None}

    def read_deb(self, path: str) -> Iterator[tuple[tarfile.TarInfo, bytes]]:
        """The filesystem content of a ``.deb``: each entry's header and, for files, bytes."""
        data = subprocess_bytes(["dpkg-deb", "--fsys-tarfile", path])
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                source = tar.extractfile(member) if member.isreg() else None
                yield member, source.read() if source else b""


def subprocess_bytes(argv: Sequence[str]) -> bytes:
    """Run ``argv`` and return its stdout, raising :class:`AptError` on failure."""
    try:
        done = subprocess.run(list(argv), capture_output=True, check=False)
    except FileNotFoundError as exc:
        raise AptError(f"{argv[0]} is not installed") from exc
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise AptError(f"{' '.join(argv)} failed: {reason[-1] if reason else done.returncode}")
    return done.stdout
