"""Fixtures every test directory can ask for; the helpers behind them live in tests/harness/.

Services a test needs (a Docker engine, cgroups, root, the offline images) come as fixtures
that skip locally and fail in CI when missing (``tests/harness/needs.py``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import docker
import pytest

from tests.harness import dockerd
from tests.harness.cluster import Cluster, running_cluster
from tests.harness.locks import exclusive
from tests.harness.needs import require_root
from tests.harness.registry import offline_images

# mesos-master and mesos-agent forked from one process that imported them (the harness's
# zygote: tests/harness/zygote.py says why); AGENT_RUNTIME_TEST_FORK=0 exec's each one.
os.environ.setdefault("AGENT_RUNTIME_TEST_FORK", "1")


@pytest.fixture
def cluster(tmp_path: object) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), agents=1) as running:
        yield running


@pytest.fixture
def cluster2(tmp_path: object) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), agents=2) as running:
        yield running


@pytest.fixture
def redis_port() -> Iterator[int]:
    """Redis's default port, which the redis images listen on: one test at a time holds it."""
    with exclusive("port-6379"):
        yield 6379


@pytest.fixture(scope="session")
def engine() -> Iterator[docker.APIClient]:
    """The running Docker engine (``scripts/docker.sh`` starts one)."""
    client = dockerd.engine()
    yield client
    client.close()


@pytest.fixture(scope="session")
def docker_images(engine: docker.APIClient) -> str:
    """A ``--docker_registry`` directory for the docker containerizer: busybox (and redis)."""
    return dockerd.image_dir(engine)


@pytest.fixture(scope="session")
def offline_images_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """busybox.tar and redis.tar as ``mesos-images build`` writes them, built once for the
    whole run: xdist workers share one directory (each build costs seconds even from cache).
    Read it, never write into it."""
    run_dir = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        run_dir = run_dir.parent  # the run's own directory, above each worker's
    output = run_dir / "offline-images"
    with exclusive(f"offline-images-{run_dir.name}"):
        if not (output / "built").exists():
            offline_images(str(output))
            (output / "built").touch()
    return str(output)


@pytest.fixture(scope="session")
def image_task_images(offline_images_dir: str) -> str:
    """The offline images, for tests whose image tasks mount and unshare: root."""
    require_root("image tasks mount and unshare")
    return offline_images_dir


# A test that asks for one of these fixtures carries its marker, so the markers always say what
# a test needs: ``-m "not docker"`` deselects every test that would touch the engine.
FIXTURE_MARKERS = {
    "engine": ("docker",),
    "docker_images": ("docker",),
    "offline_images_dir": ("images",),
    "image_task_images": ("root", "images"),
}


def xdist_group(item: pytest.Item) -> str:
    """Which tests run on one worker under ``pytest -n N --dist loadgroup``: those of one module
    (they share its module fixtures and may rely on each other's leftovers), and all the tests
    of the Docker engine (they load, tag and remove images every other one uses)."""
    if "engine" in getattr(item, "fixturenames", ()):
        return "docker-engine"
    return item.nodeid.split("::")[0]


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in item.path.parts:
            item.add_marker("integration")
        for fixture, markers in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                for marker in markers:
                    item.add_marker(marker)
        if item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(xdist_group(item)))
