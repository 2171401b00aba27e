"""The Docker containerizer pulls from a real Docker Registry v2 (Debian's ``docker-registry`` on
loopback) when ``--docker_registry`` is its URL: the engine pulls ``<host>/<repository>:<tag>``
and the task runs from what it pulled. The repository name is fresh per run, so the image
cannot already be in the engine."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator

import docker
import pytest
from docker import errors as sdk_errors

from tests.harness.cluster import VENV_BIN, Cluster, sandbox_file
from tests.harness.registry import Registry, push_archive, registry_server

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry_server(str(tmp_path_factory.mktemp("registry"))) as running:
        yield running


def test_a_docker_task_runs_an_image_pulled_from_the_registry(
        tmp_path: str, registry: Registry, engine: docker.APIClient,
        offline_images_dir: str) -> None:
    images = offline_images_dir
    repository = f"pulltest-{uuid.uuid4().hex[:8]}"
    push_archive(registry, os.path.join(images, "busybox.tar"), repository, tag="v1")
    host = registry.url.removeprefix("http://")
    cluster = Cluster(str(tmp_path), agent_flags=[
        "--containerizers=docker", f"--docker_registry={registry.url}",
        "--resources=cpus:2;mem:1024;disk:1024;ports:[31000-32000]"])
    try:
        cluster.start()
        done = subprocess.run(
            [os.path.join(VENV_BIN, "mesos-execute"), f"--master={cluster.master}",
             "--name=pulled", "--containerizer=docker", f"--docker_image={repository}:v1",
             "--command=cat /etc/os-release | head -1"],
            capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "TASK_FINISHED" in done.stdout, done.stdout
        assert sandbox_file(cluster, "pulled", "stdout").startswith("PRETTY_NAME=")
        # Pulled from our registry, and known to the engine under the name the task gave.
        tags = {tag for image in engine.images() for tag in image.get("RepoTags") or []}
        assert f"{host}/{repository}:v1" in tags
        assert f"{repository}:v1" in tags
    finally:
        cluster.stop()
        for name in (f"{host}/{repository}:v1", f"{repository}:v1"):
            with contextlib.suppress(sdk_errors.APIError):
                engine.remove_image(name, force=True)
