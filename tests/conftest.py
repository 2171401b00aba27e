from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import Cluster, running_cluster


@pytest.fixture
def cluster(tmp_path: object) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), agents=1) as running:
        yield running


@pytest.fixture
def cluster2(tmp_path: object) -> Iterator[Cluster]:
    with running_cluster(str(tmp_path), agents=2) as running:
        yield running
