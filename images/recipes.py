"""What goes into the offline images: Debian packages per layer, a few files, the runtime config.

Both images share one base layer (``base-files``: ``/etc/os-release``, the directory tree; plus
``/etc/passwd``, ``/etc/group`` and the merged-/usr links Debian 12 installs), so a store that
keys layers by digest keeps it once. The top layer holds the program:

- ``busybox``: ``busybox-static`` with a link per applet, ``Cmd ["sh"]`` like the official image.
- ``redis``: ``redis-server``, ``redis-tools`` and their shared-library closure. Unlike the
  official image there is no ``docker-entrypoint.sh`` (the image has no shell to run one); the
  config it would generate is baked in instead: ``Cmd ["redis-server",
  "/etc/redis/redis.conf"]`` with a config that listens on every address with protected mode
  off, in the foreground, data in ``/data`` (the ``WorkingDir``). Without an Entrypoint, any
  command given to the container replaces Cmd whole (``docker run redis redis-cli ping``, or
  Mesos's ``shell=false`` with a value), and extra options go after the config file
  (``redis-server /etc/redis/redis.conf --port 6380``).
"""

from __future__ import annotations

import dataclasses

from .image_config import RuntimeConfig


@dataclasses.dataclass(frozen=True)
class FileSpec:
    path: str
    content: bytes
    mode: int = 0o644


@dataclasses.dataclass(frozen=True)
class DirSpec:
    path: str
    mode: int = 0o755
    uid: int = 0
    gid: int = 0


@dataclasses.dataclass(frozen=True)
class LayerRecipe:
    packages: tuple[str, ...]  # unpacked into the layer, in this order
    with_libraries: bool = False  # also unpack the shared-library packages they depend on
    busybox_applets: bool = False  # add a link to busybox for each applet it reports
    dirs: tuple[DirSpec, ...] = ()  # made after the packages, replacing their modes
    files: tuple[FileSpec, ...] = ()  # written after the packages, replacing theirs
    symlinks: tuple[tuple[str, str], ...] = ()  # (path, target)


@dataclasses.dataclass(frozen=True)
class ImageRecipe:
    name: str  # the repository: the archive is <name>.tar, tagged <name>:latest
    description: str
    layers: tuple[LayerRecipe, ...]  # bottom first
    config: RuntimeConfig


@dataclasses.dataclass(frozen=True)
class User:
    name: str
    uid: int
    home: str
    shell: str = "/usr/sbin/nologin"


_BASE_USERS = (User("root", 0, "/root", "/bin/sh"), User("daemon", 1, "/usr/sbin"),
               User("nobody", 65534, "/nonexistent"))
_NOBODY_GROUP = "nogroup"  # Debian's name for gid 65534


def account_files(users: tuple[User, ...]) -> tuple[FileSpec, FileSpec]:
    """``/etc/passwd`` and ``/etc/group`` with one same-named group per user, as Debian has
    (base-passwd's maintainer script would write them; we run no maintainer scripts)."""
    passwd = "".join(f"{u.name}:x:{u.uid}:{u.uid}:{u.name}:{u.home}:{u.shell}\n" for u in users)
    group = "".join(f"{_NOBODY_GROUP if u.uid == 65534 else u.name}:x:{u.uid}:\n" for u in users)
    return FileSpec("etc/passwd", passwd.encode()), FileSpec("etc/group", group.encode())


PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # Docker's default

# Debian 12 is installed with a merged /usr: the top-level directories are links into /usr. The
# builder moves package paths accordingly (see build.merged_usr).
MERGED_USR_LINKS = (("bin", "usr/bin"), ("sbin", "usr/sbin"), ("lib", "usr/lib"),
                    ("lib64", "usr/lib64"))

BASE_LAYER = LayerRecipe(
    packages=("base-files",),
    dirs=(DirSpec("tmp", 0o1777), DirSpec("var/tmp", 0o1777), DirSpec("root", 0o700),
          DirSpec("dev"), DirSpec("proc"), DirSpec("sys"), DirSpec("run"), DirSpec("etc"),
          DirSpec("usr/lib64")),
    files=account_files(_BASE_USERS),
    symlinks=MERGED_USR_LINKS,
)

REDIS_UID = 999  # the official image's redis user

REDIS_CONF = b"""\
# Written by mesos-images: redis as a container runs it (the official image's defaults).
# Listen on every address with no password: the container's network is the boundary.
bind 0.0.0.0
protected-mode no
port 6379
# In the foreground, logging to stdout: the executor supervises and collects it.
daemonize no
supervised no
logfile ""
dir /data
"""

BUSYBOX = ImageRecipe(
    name="busybox",
    description="BusyBox (busybox-static) on Debian's base-files",
    layers=(BASE_LAYER, LayerRecipe(packages=("busybox-static",), busybox_applets=True)),
    config=RuntimeConfig(cmd=("sh",), env=(PATH,)),
)

REDIS = ImageRecipe(
    name="redis",
    description="Redis server and CLI with their shared libraries, on Debian's base-files",
    layers=(BASE_LAYER, LayerRecipe(
        packages=("redis-server", "redis-tools"),
        with_libraries=True,
        dirs=(DirSpec("data", 0o755, REDIS_UID, REDIS_UID),),
        files=(FileSpec("etc/redis/redis.conf", REDIS_CONF),
               *account_files((*_BASE_USERS, User("redis", REDIS_UID, "/data")))),
    )),
    config=RuntimeConfig(cmd=("redis-server", "/etc/redis/redis.conf"), env=(PATH,),
                         working_dir="/data", exposed_ports=("6379/tcp",)),
)

RECIPES = {recipe.name: recipe for recipe in (BUSYBOX, REDIS)}
