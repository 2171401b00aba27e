"""Image references and where an image comes from (pull vs ``docker load``), against a fake
engine: the decisions are ours, the engine calls are the adapter's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import pytest

from agent_runtime.containerizer.docker_engine import ImageNotFound
from agent_runtime.containerizer.docker_images import (
    ImageFetcher,
    archive_candidates,
    split_reference,
)


@pytest.mark.parametrize(("reference", "parts"), [
    ("busybox", (None, "busybox", "latest")),
    ("busybox:1.36", (None, "busybox", "1.36")),
    ("library/redis:7", (None, "library/redis", "7")),
    ("127.0.0.1:5000/team/app:v2", ("127.0.0.1:5000", "team/app", "v2")),
    ("localhost/app", ("localhost", "app", "latest")),
    ("registry.example/app@sha256:abc", ("registry.example", "app", "@sha256:abc")),
])
def test_split_reference(reference: str, parts: tuple[str | None, str, str]) -> None:
    assert split_reference(reference) == parts


def test_archive_names_as_mesos_with_latest_interchangeable() -> None:
    assert archive_candidates("/imgs", "redis") == ["/imgs/redis.tar", "/imgs/redis:latest.tar"]
    assert archive_candidates("/imgs", "busybox:latest") == [
        "/imgs/busybox:latest.tar", "/imgs/busybox.tar"]
    assert archive_candidates("/imgs", "redis:7") == ["/imgs/redis:7.tar"]


class FakeEngine:
    def __init__(self, present: set[str], archive_holds: list[str] | None = None) -> None:
        self.present = present
        self.archive_holds = archive_holds or []
        self.calls: list[tuple[Any, ...]] = []

    async def has_image(self, reference: str) -> bool:
        return reference in self.present

    async def pull(self, reference: str, auth: Mapping[str, str] | None) -> None:
        self.calls.append(("pull", reference, auth))
        self.present.add(reference)

    async def load(self, path: str) -> list[str]:
        self.calls.append(("load", path))
        self.present.update(self.archive_holds)
        return list(self.archive_holds)

    async def tag(self, source: str, repository: str, tag: str) -> None:
        self.calls.append(("tag", source, f"{repository}:{tag}"))
        self.present.add(f"{repository}:{tag}")


def fetcher(engine: FakeEngine, registry: str | None, config: str | None = None
            ) -> ImageFetcher:
    return ImageFetcher(engine, registry, config)  # type: ignore[arg-type]


async def test_present_image_is_not_fetched_unless_forced(tmp_path: Any) -> None:
    engine = FakeEngine({"busybox"}, ["busybox:latest"])
    (tmp_path / "busybox.tar").write_bytes(b"")
    await fetcher(engine, str(tmp_path)).ensure("busybox", force_pull=False)
    assert engine.calls == []
    await fetcher(engine, str(tmp_path)).ensure("busybox", force_pull=True)
    assert engine.calls == [("load", os.path.join(tmp_path, "busybox.tar"))]


async def test_archive_saved_under_another_name_is_tagged_as_asked(tmp_path: Any) -> None:
    engine = FakeEngine(set(), ["sha256:1234"])
    (tmp_path / "app:v1.tar").write_bytes(b"")
    await fetcher(engine, str(tmp_path)).ensure("app:v1", force_pull=False)
    assert engine.calls[-1] == ("tag", "sha256:1234", "app:v1")


async def test_missing_archive_names_the_image(tmp_path: Any) -> None:
    with pytest.raises(ImageNotFound, match=r"Failed to obtain image 'nope:1': no archive"):
        await fetcher(FakeEngine(set()), str(tmp_path)).ensure("nope:1", force_pull=False)


async def test_registry_url_pulls_from_it_and_tags_the_local_name() -> None:
    engine = FakeEngine(set())
    config = '{"auths": {"127.0.0.1:5000": {"auth": "dXNlcjpwYXNz"}}}'
    await fetcher(engine, "http://127.0.0.1:5000", config).ensure("team/app:v2", False)
    assert engine.calls == [
        ("pull", "127.0.0.1:5000/team/app:v2", {"username": "user", "password": "pass",
                                                 "serveraddress": "127.0.0.1:5000"}),
        ("tag", "127.0.0.1:5000/team/app:v2", "team/app:v2"),
    ]


async def test_without_registry_the_reference_is_pulled_as_given() -> None:
    engine = FakeEngine(set())
    await fetcher(engine, None).ensure("redis:7", force_pull=False)
    assert engine.calls == [("pull", "redis:7", None)]
