"""``mesos-images``: build the offline images, or look inside an image archive.

::

    mesos-images build [--output=DIR] [--cache_dir=DIR] [--apt_update=auto|always|never]
                       [--rebuild] [busybox] [redis]
    mesos-images inspect ARCHIVE [REFERENCE]

``build`` writes ``<output>/<name>.tar`` (``docker save`` archives, both layouts) for the named
images, all of them when none is named, ready for ``--docker_registry=<output>`` and for
``docker load -i``. Flags can also come from ``MESOS_IMAGES_<FLAG>`` variables. Exit status 1
with one line on stderr when anything fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import typing
from collections.abc import Sequence

from agent_runtime import flags
from agent_runtime.errors import FlagError, RuntimeErrorBase
from agent_runtime.flags import flag

from .apt import Apt, UpdatePolicy
from .archive import DockerArchive
from .build import BuildResult, ImageBuilder
from .recipes import RECIPES

DEFAULT_OUTPUT = "/var/lib/mesos/images"
USAGE = f"""usage: mesos-images build [flags] [{'] ['.join(RECIPES)}]
       mesos-images inspect ARCHIVE [REFERENCE]"""


def default_cache_dir(environ: typing.Mapping[str, str]) -> str:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "agent-runtime", "images")


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    output: str = flag(DEFAULT_OUTPUT, "Directory to write <name>.tar into")
    cache_dir: str | None = flag(None, "Downloaded packages and built images "
                                       "(default ~/.cache/agent-runtime/images)")
    apt_update: str = flag("auto", "Run apt-get update: auto (when a package cannot be found "
                                   "or fetched), always, never")
    rebuild: bool = flag(False, "Build even when the image cache has this exact image")


def split_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Positional names and flags, allowing ``--output DIR`` (a value after a space)."""
    hints = typing.get_type_hints(BuildConfig)
    names: list[str] = []
    flag_args: list[str] = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--"):
            names.append(arg)
            continue
        flag_args.append(arg)
        key = arg[2:].replace("-", "_")
        if "=" not in arg and key in hints and hints[key] is not bool and args:
            flag_args.append(args.pop(0))
    return names, flag_args


def _describe(result: BuildResult) -> str:
    how = "from cache" if result.cached else "built"
    return (f"{result.name}: {how} {result.path} ({result.size / 1e6:.1f} MB, "
            f"{result.layers} layers, image {result.image_id[:19]}, "
            f"{len(result.packages)} packages) in {result.seconds:.1f}s")


def build(argv: Sequence[str], environ: typing.Mapping[str, str]) -> int:
    names, flag_args = split_args(argv)
    config = flags.load(BuildConfig, flag_args, environ, prefix="MESOS_IMAGES_")
    if config.apt_update not in typing.get_args(UpdatePolicy):
        raise FlagError(f"--apt_update must be auto, always or never, not {config.apt_update!r}")
    unknown = [name for name in names if name not in RECIPES]
    if unknown:
        raise FlagError(f"no recipe for image {unknown[0]!r} (known: {', '.join(RECIPES)})")
    cache_dir = config.cache_dir or default_cache_dir(environ)
    apt = Apt(os.path.join(cache_dir, "debs"),
              update=typing.cast(UpdatePolicy, config.apt_update))
    builder = ImageBuilder(apt, cache_dir, rebuild=config.rebuild)
    recipes = [RECIPES[name] for name in dict.fromkeys(names or RECIPES)]  # in order, once each
    start = time.monotonic()
    plans = builder.plan(recipes)
    count = len({package.filename for plan in plans.values() for layer in plan
                 for package in layer})
    updated = " (after apt-get update: the package lists were missing or stale)" \
        if apt.updated else ""
    print(f"resolved {count} Debian packages with apt in {time.monotonic() - start:.1f}s"
          f"{updated}", flush=True)
    for recipe in recipes:
        print(_describe(builder.build(recipe, plans[recipe.name], config.output)), flush=True)
    print(f"use with: mesos-agent --docker_registry={os.path.abspath(config.output)} "
          "--image_providers=docker, or docker load -i <archive>", flush=True)
    return 0


def inspect(argv: Sequence[str]) -> int:
    if len(argv) not in (1, 2):
        raise FlagError("inspect takes an archive and, optionally, an image reference")
    with DockerArchive(argv[0]) as archive:
        image = archive.image(argv[1] if len(argv) == 2 else None)
        archive.verify(image)
        summary = {
            "repo_tags": list(image.repo_tags), "image_id": image.image_id,
            "layout": image.layout, "architecture": image.architecture, "os": image.os,
            "config": image.config.to_docker(),
            "layers": [{"id": layer.id, "diff_id": layer.diff_id} for layer in image.layers],
        }
    print(json.dumps(summary, indent=2))
    return 0


def run(argv: Sequence[str], environ: typing.Mapping[str, str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        print(flags.usage(BuildConfig))
        return 0 if argv else 1
    command, rest = argv[0], argv[1:]
    if "-h" in rest or "--help" in rest:
        print(USAGE)
        print(flags.usage(BuildConfig))
        return 0
    try:
        if command == "build":
            return build(rest, environ)
        if command == "inspect":
            return inspect(rest)
        raise FlagError(f"unknown command {command!r}")
    except FlagError as exc:
        print(f"mesos-images: {exc} (see mesos-images --help)", file=sys.stderr)
        return 1
    except RuntimeErrorBase as exc:
        print(f"mesos-images: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mesos-images: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1


def main() -> None:
    try:
        code = run(sys.argv[1:], os.environ)
    except KeyboardInterrupt:
        code = 130
    raise SystemExit(code)


if __name__ == "__main__":
    main()
