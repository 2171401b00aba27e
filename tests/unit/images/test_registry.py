"""The registry puller against a hostile fake registry on loopback: malformed documents, auth
realms and redirects it must refuse, bodies too large to read."""

from __future__ import annotations

import hashlib
import http.server
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.images.errors import ImageError, RegistryError
from agent_runtime.images.provisioner import Provisioner
from agent_runtime.images.reference import parse_reference
from agent_runtime.images.registry import SCHEMA2, RegistryPuller

Route = tuple[int, dict[str, str], bytes]  # status, headers, body


class FakeRegistry:
    """Answers GETs from ``routes`` (path -> status, headers, body); 404 otherwise."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = routes.get(self.path.split("?")[0], (404, {}, b"{}"))
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def json(self, path: str, value: Any, status: int = 200) -> str:
        """Serve ``value`` at ``path``; its digest."""
        body = json.dumps(value).encode()
        self.routes[path] = (status, {"Content-Type": "application/json"}, body)
        return "sha256:" + hashlib.sha256(body).hexdigest()

    def image(self, config: Any) -> None:
        """``busybox:latest``: a schema2 manifest whose config blob is ``config``."""
        digest = self.json("/v2/busybox/blobs/config", config)
        self.routes[f"/v2/busybox/blobs/{digest}"] = \
            self.routes.pop("/v2/busybox/blobs/config")
        self.json("/v2/busybox/manifests/latest", {
            "schemaVersion": 2, "mediaType": SCHEMA2,
            "config": {"digest": digest, "size": 1},
            "layers": [{"digest": "sha256:" + "ab" * 32, "size": 10}]})


@pytest.fixture
def registry() -> Iterator[FakeRegistry]:
    fake = FakeRegistry()
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.server.shutdown()
        fake.server.server_close()
        thread.join()


def resolve(registry: FakeRegistry, image: str = "busybox") -> Any:
    return RegistryPuller(registry.url).resolve(parse_reference(image), image)


DIGEST = "sha256:" + "cd" * 32


@pytest.mark.parametrize(("index", "field"), [
    ({"manifests": ["x"]}, r"field manifests\[0\] .* must be an object"),
    ({"manifests": "x"}, "field manifests .* must be a list"),
    ({"manifests": [{"platform": "linux", "digest": DIGEST}]},
     r"field manifests\[0\]\.platform .* must be an object"),
    ({"manifests": [{"platform": {"os": "linux", "architecture": "amd64"}, "digest": 7}]},
     r"field manifests\[0\]\.digest .* is not a sha256 digest"),
    ({"manifests": [{"platform": {"os": "linux", "architecture": "amd64"},
                     "digest": "sha256:../../x"}]},
     r"field manifests\[0\]\.digest .* is not a sha256 digest"),
])
def test_a_malformed_manifest_list_is_a_registry_error(registry: FakeRegistry, index: Any,
                                                        field: str) -> None:
    registry.json("/v2/busybox/manifests/latest", index)
    with pytest.raises(RegistryError, match=f"image 'busybox': {field}"):
        resolve(registry)


@pytest.mark.parametrize(("manifest", "field"), [
    ({"schemaVersion": 2, "config": [], "layers": []}, "field config .* must be an object"),
    ({"schemaVersion": 2, "config": {"digest": DIGEST}, "layers": ["x"]},
     r"field layers\[0\] .* must be an object"),
    ({"schemaVersion": 2, "config": {"digest": DIGEST}, "layers": {}},
     "field layers .* must be a list"),
    ({"schemaVersion": 2, "config": {"digest": DIGEST},
      "layers": [{"digest": DIGEST, "size": 1e999}]}, r"field layers\[0\]\.size"),
    ({"schemaVersion": 1, "fsLayers": [{"blobSum": DIGEST}],
      "history": [{"v1Compatibility": "[]"}]},
     r"field history\[0\]\.v1Compatibility .* must hold a JSON object"),
    ({"schemaVersion": 1, "fsLayers": [{"blobSum": DIGEST}],
      "history": [{"v1Compatibility": {"config": {}}}]},
     r"field history\[0\]\.v1Compatibility .* must be a string"),
    ({"schemaVersion": 1, "fsLayers": ["x"], "history": [{"v1Compatibility": "{}"}]},
     r"field fsLayers\[0\] .* must be an object"),
    ({"schemaVersion": 1, "fsLayers": [{"blobSum": DIGEST}],
      "history": [{"v1Compatibility": '{"config": []}'}]}, "image config must be an object"),
])
def test_a_malformed_manifest_is_a_registry_error(registry: FakeRegistry, manifest: Any,
                                                  field: str) -> None:
    registry.json("/v2/busybox/manifests/latest", manifest)
    with pytest.raises(RegistryError, match=f"image 'busybox': .*{field}"):
        resolve(registry)


@pytest.mark.parametrize(("config", "field"), [
    ({"rootfs": ["x"]}, "field rootfs in config sha256:[0-9a-f]+ must be an object"),
    ({"rootfs": {"diff_ids": "x"}}, r"field rootfs\.diff_ids in config .* must be a list"),
    ({"rootfs": {"diff_ids": [7]}}, r"field rootfs\.diff_ids\[0\] .* is not a sha256 digest"),
    ({"rootfs": {"diff_ids": ["sha256:../x"]}}, r"field rootfs\.diff_ids\[0\]"),
    ({"rootfs": {"diff_ids": [DIGEST]}, "config": {"Env": 7}}, "field Env must be a list"),
])
def test_a_malformed_config_is_a_registry_error(registry: FakeRegistry, config: Any,
                                                field: str) -> None:
    registry.image(config)
    with pytest.raises(RegistryError, match=f"image 'busybox': .*{field}"):
        resolve(registry)


def test_a_well_formed_image_resolves(registry: FakeRegistry) -> None:
    registry.image({"rootfs": {"diff_ids": [DIGEST]}, "config": {"Cmd": ["sh"]}})
    manifest = resolve(registry)
    assert [(layer.id, layer.diff_id) for layer in manifest.layers] == [("cd" * 32, DIGEST)]
    assert manifest.config.cmd == ("sh",)


async def test_the_provisioner_fails_cleanly_on_a_malformed_manifest_list(
        tmp_path: Any, registry: FakeRegistry) -> None:
    registry.json("/v2/busybox/manifests/latest", {"manifests": ["x"]})
    prov = Provisioner(str(tmp_path / "work"), str(tmp_path / "store"), registry.url, "copy")
    with pytest.raises(RegistryError, match=r"image 'busybox': field manifests\[0\]"):
        await prov.provision("c1", "busybox")


def challenge(registry: FakeRegistry, realm: str) -> None:
    registry.routes["/v2/busybox/manifests/latest"] = (
        401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="fake"'}, b"{}")


@pytest.mark.parametrize("realm", ["file:///etc/passwd", "ftp://127.0.0.1/token",
                                   "gopher://127.0.0.1/", "/token", "http:///token"])
def test_only_http_auth_realms_are_followed(registry: FakeRegistry, realm: str) -> None:
    challenge(registry, realm)
    with pytest.raises(RegistryError, match=r"names the auth realm .* which is not an "
                                            r"http or https URL"):
        resolve(registry)


def test_an_https_registry_accepts_only_an_https_realm() -> None:
    puller = RegistryPuller("https://registry.example")
    with pytest.raises(RegistryError, match="which is not an https URL"):
        puller._authorize('Bearer realm="http://auth.example/token"', "registry.example",
                          "busybox", "https")


def test_a_bearer_token_is_fetched_from_an_http_realm(registry: FakeRegistry) -> None:
    registry.json("/token", {"token": "secret"})
    token = RegistryPuller(registry.url)._authorize(
        f'Bearer realm="{registry.url}/token",service="fake"', "h", "busybox", "http")
    assert token == "Bearer secret"
    registry.json("/token", ["not", "an", "object"])
    with pytest.raises(RegistryError, match=r"token answer .* is not a JSON object"):
        RegistryPuller(registry.url)._authorize(f'Bearer realm="{registry.url}/token"', "h",
                                                "busybox", "http")


def test_a_redirect_to_ftp_is_refused(registry: FakeRegistry) -> None:
    registry.routes["/v2/busybox/manifests/latest"] = (
        302, {"Location": "ftp://127.0.0.1/manifest"}, b"")
    with pytest.raises(RegistryError, match="302 redirect to a ftp: URL refused"):
        resolve(registry)


def test_documents_larger_than_the_limit_are_refused(registry: FakeRegistry,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("agent_runtime.images.registry.MAX_DOCUMENT", 1 << 20)
    big = {"schemaVersion": 2, "padding": "x" * (1 << 20)}
    registry.json("/v2/busybox/manifests/latest", big)
    with pytest.raises(RegistryError, match=r"image 'busybox': manifest http://.* is larger "
                                            r"than the 1048576 byte limit \(1 MiB\)"):
        resolve(registry)
    registry.image({"rootfs": {"diff_ids": [DIGEST]}, "padding": "x" * (1 << 20)})
    with pytest.raises(RegistryError, match=r"config blob .* is larger than the 1048576 byte"):
        resolve(registry)


def test_the_default_document_limit_is_4_mib() -> None:
    from agent_runtime.images.registry import MAX_DOCUMENT

    assert MAX_DOCUMENT == 4 << 20
    assert issubclass(RegistryError, ImageError)
