"""``--docker_config`` means one thing to the Docker engine seam and to the image registry
client: a path, or the JSON itself."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from agent_runtime.containerizer.docker_engine import DockerEngineError, registry_auth
from agent_runtime.docker_config import DockerConfigError, load
from agent_runtime.images.errors import RegistryError
from agent_runtime.images.registry_http import credentials

AUTH = base64.b64encode(b"alice:secret").decode()
CONFIG = {"auths": {"registry.example:5000": {"auth": AUTH}}}


@pytest.fixture(params=["path", "json"])
def flag(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "json":
        return json.dumps(CONFIG)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(CONFIG))
    return str(path)


def test_a_path_or_the_json_itself_reads_the_same(flag: str) -> None:
    assert load(flag) == CONFIG
    assert load(None) is None and load("") is None


def test_both_users_find_the_samecredentials(flag: str) -> None:
    assert credentials(flag, "registry.example:5000") == AUTH
    assert credentials(flag, "other.example") is None
    auth = registry_auth(flag, "registry.example:5000")
    assert auth is not None and auth["username"] == "alice"


def test_bad_values_are_errors_naming_the_flag_at_each_seam(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.json")
    array = tmp_path / "array.json"
    array.write_text("[1]")
    for value, message in ((missing, "cannot read"), ("{not json", "is not JSON"),
                           (str(array), "must be a JSON object")):
        with pytest.raises(DockerConfigError, match=f"--docker_config.*{message}"):
            load(value)
        with pytest.raises(RegistryError, match=message):
            credentials(value, "registry.example:5000")
        with pytest.raises(DockerEngineError, match=message):
            registry_auth(value, "registry.example:5000")
