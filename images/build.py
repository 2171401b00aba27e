"""Build an image from a recipe: resolve packages, unpack them into layers, write the archive.

::

    cache_dir/
      debs/<name>_<version>_<arch>.deb        downloaded packages, checked against apt's hashes
      images/<image>-<key>.tar                built archives; key = recipe + package hashes
      tmp/                                    busybox, run once to list its applets

A build is a pure function of the recipe and the exact ``.deb`` files, so the key of the image
cache is a hash of both (and of :data:`BUILD_FORMAT`, bumped whenever this code changes what it
writes). Unpacking reads each ``.deb``'s data tar with ``dpkg-deb --fsys-tarfile`` into a
:class:`LayerTree` rather than ``dpkg-deb -x`` into a directory: ownership and modes come from the
package, not from whoever runs the build, and the build needs no root.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence

from .apt import Apt, Package, library_closure
from .archive import DockerArchive
from .docker_save import SavedLayer, canonical_json, write_docker_save
from .errors import AptError, ImageError
from .layer import LayerTree, clean_name
from .library_closure import check_libraries
from .recipes import ImageRecipe, LayerRecipe

BUILD_FORMAT = 1
_MERGED_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# Documentation is dropped, as Debian's own slim images do, but licences stay with the code.
_DROPPED = ("usr/share/doc/", "usr/share/man/", "usr/share/info/", "usr/share/lintian/",
            "usr/share/locale/")
_ARCHITECTURES = {"amd64": "amd64", "arm64": "arm64", "armhf": "arm", "i386": "386",
                  "ppc64el": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def merged_usr(name: str) -> str:
    """Where a package path lands on a merged-/usr system: ``bin/sh`` -> ``usr/bin/sh``."""
    top = name.split("/", 1)[0]
    return f"usr/{name}" if top in _MERGED_DIRS else name


def _kept(name: str) -> bool:
    if name.startswith("usr/share/doc/") and posixpath.basename(name) == "copyright":
        return True
    return not any(name.startswith(prefix) or name + "/" == prefix for prefix in _DROPPED)


@dataclasses.dataclass(frozen=True)
class BuildResult:
    name: str
    path: str  # the archive in the output directory
    image_id: str
    layers: int
    size: int
    packages: tuple[Package, ...]
    cached: bool  # reused from the image cache rather than built
    seconds: float


class ImageBuilder:
    def __init__(self, apt: Apt, cache_dir: str, rebuild: bool = False) -> None:
        self.apt = apt
        self.cache_dir = cache_dir
        self.rebuild = rebuild

    def plan(self, recipes: Sequence[ImageRecipe]) -> dict[str, list[list[Package]]]:
        """The exact packages of each layer of each recipe, asking apt once for all of them
        (two apt calls, ~1.5 s, however many images). A package goes in the lowest layer of an
        image that wants it."""
        def resolve() -> dict[str, list[list[Package]]]:
            roots = sorted({name for recipe in recipes for layer in recipe.layers
                            if layer.with_libraries for name in layer.packages})
            graph = self.apt.dependency_graph(roots) if roots else {}
            names: dict[str, list[list[str]]] = {}
            for recipe in recipes:
                placed: set[str] = set()
                names[recipe.name] = []
                for layer in recipe.layers:
                    wanted = library_closure(graph, layer.packages) if layer.with_libraries \
                        else list(layer.packages)
                    names[recipe.name].append([name for name in wanted if name not in placed])
                    placed.update(wanted)
            every = sorted({n for layers in names.values() for layer in layers for n in layer})
            located = {package.name: package for package in self.apt.locate(every)}
            return {image: [[located[n] for n in layer] for layer in layers]
                    for image, layers in names.items()}
        return self.apt.with_update(resolve)

    def build(self, recipe: ImageRecipe, plan: list[list[Package]],
              output_dir: str) -> BuildResult:
        """Write ``<output_dir>/<recipe.name>.tar`` from the packages ``plan`` names."""
        start = time.monotonic()
        arch = self.apt.architecture()
        packages = tuple(package for layer in plan for package in layer)
        key = hashlib.sha256(canonical_json({
            "format": BUILD_FORMAT, "recipe": repr(recipe), "architecture": arch,
            "packages": [[p.filename, p.hash_name, p.hash_value] for p in packages],
        })).hexdigest()[:16]
        cached_path = os.path.join(self.cache_dir, "images", f"{recipe.name}-{key}.tar")
        cached = os.path.exists(cached_path) and not self.rebuild
        if not cached:
            try:
                debs = self.apt.fetch(packages)
            except AptError:
                # A 404 means the lists name versions the mirror no longer has: update, then
                # plan again, since the update can change the versions too.
                if not self.apt.may_update() or os.geteuid() != 0:
                    raise
                self.apt.update()
                return self.build(recipe, self.plan([recipe])[recipe.name], output_dir)
            trees = [self._layer(layer, packages_of, debs)
                     for layer, packages_of in zip(recipe.layers, plan, strict=True)]
            check_libraries(trees, recipe.name)
            os.makedirs(os.path.dirname(cached_path), exist_ok=True)
            write_docker_save(
                cached_path, recipe.name, "latest",
                [SavedLayer(tree.to_tar(), _history(layer, packages_of))
                 for tree, layer, packages_of in zip(trees, recipe.layers, plan, strict=True)],
                recipe.config, _ARCHITECTURES.get(arch, arch), aliases=(f"library/{recipe.name}",))
        path = self._publish(cached_path, output_dir, recipe.name)
        with DockerArchive(path) as archive:
            image = archive.image()
        return BuildResult(name=recipe.name, path=path, image_id=image.image_id or "",
                           layers=len(image.layers), size=os.path.getsize(path),
                           packages=packages, cached=cached, seconds=time.monotonic() - start)

    def _layer(self, recipe: LayerRecipe, packages: Sequence[Package],
               debs: dict[str, str]) -> LayerTree:
        tree = LayerTree()
        for package in packages:
            for info, data in self.apt.read_deb(debs[package.name]):
                name = merged_usr(clean_name(info.name))
                if not name or not _kept(name):
                    continue
                info.name = name
                if info.islnk():
                    info.linkname = merged_usr(clean_name(info.linkname))
                tree.add(info, data)
        if recipe.busybox_applets:
            self._add_applets(tree)
        for spec in recipe.dirs:
            tree.add_dir(spec.path, spec.mode, spec.uid, spec.gid)
        for file in recipe.files:
            tree.add_file(file.path, file.content, file.mode)
        for path, target in recipe.symlinks:
            tree.add_symlink(path, target)
        return tree

    def _add_applets(self, tree: LayerTree) -> None:
        """A symlink per applet, from busybox's own list (``--list-full``: ``bin/sh``, ...)."""
        binary = tree.get("usr/bin/busybox")
        if binary is None:
            raise ImageError("busybox-static did not install usr/bin/busybox")
        scratch = os.path.join(self.cache_dir, "tmp")
        os.makedirs(scratch, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=scratch, prefix="busybox-", delete=False) as out:
            out.write(binary.data)
        try:
            os.chmod(out.name, stat.S_IRWXU)
            listing = subprocess.run([out.name, "--list-full"], capture_output=True, text=True,
                                     check=True).stdout
        except (OSError, subprocess.CalledProcessError) as exc:
            raise ImageError(f"could not run busybox to list its applets: {exc}") from exc
        finally:
            os.unlink(out.name)
        for line in listing.split():
            name = merged_usr(clean_name(line))
            if name and name not in tree:
                target = posixpath.relpath("usr/bin/busybox", posixpath.dirname(name))
                tree.add_symlink(name, target)

    @staticmethod
    def _publish(cached_path: str, output_dir: str, name: str) -> str:
        """Copy the archive to ``<output>/<name>.tar``, and link ``library/<name>.tar`` to it:
        Mesos's tar puller opens ``<dir>/<reference>.tar`` with the reference as written."""
        os.makedirs(os.path.join(output_dir, "library"), exist_ok=True)
        path = os.path.join(output_dir, f"{name}.tar")
        tmp = f"{path}.tmp{os.getpid()}"
        shutil.copyfile(cached_path, tmp)
        os.replace(tmp, path)
        alias = os.path.join(output_dir, "library", f"{name}.tar")
        if os.path.realpath(alias) != os.path.realpath(path):
            if os.path.lexists(alias):
                os.unlink(alias)
            os.symlink(f"../{name}.tar", alias)
        return path


def _history(layer: LayerRecipe, packages: Sequence[Package]) -> str:
    """The layer's ``created_by``: what ``docker history`` shows, with exact versions."""
    added = [f"{len(layer.files)} files"] if layer.files else []
    if layer.busybox_applets:
        added.append("applet links")
    text = "mesos-images: Debian packages " + " ".join(map(str, packages))
    return text + (f"; {', '.join(added)}" if added else "")
