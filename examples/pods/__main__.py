"""``python -m examples.pods``: run the pod framework, submit a pod, list pods.

    python -m examples.pods serve --master 127.0.0.1:5050 --port 8700
    python -m examples.pods submit --api 127.0.0.1:8700 pod.yaml
    python -m examples.pods list --api 127.0.0.1:8700

Errors are one line on stderr and exit code 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import sys
import urllib.error
import urllib.request

from aiohttp import web

from agent_runtime.proto import mesos_pb2
from agent_runtime.scheduler.driver import Driver
from examples.pods.api import application
from examples.pods.framework import PodFramework


async def serve(master: str, host: str, port: int, ttl: float) -> None:
    framework = PodFramework(ttl=ttl)
    info = mesos_pb2.FrameworkInfo(user=getpass.getuser(), name="pods", failover_timeout=60)
    driver = Driver(master, info, framework)
    runner = web.AppRunner(application(framework))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"pods API on http://{host}:{port}", flush=True)

    async def ticks() -> None:
        while True:
            await asyncio.sleep(1.0)
            with contextlib.suppress(Exception):
                await framework.tick()

    ticker = asyncio.create_task(ticks())
    try:
        await driver.run()
    finally:
        ticker.cancel()
        await runner.cleanup()


def _request(url: str, body: bytes | None = None, content_type: str = "") -> object:
    request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")[:300]
        raise SystemExit(f"pods: {exc.code}: {detail}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise SystemExit(f"pods: cannot reach {url}: {exc}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.pods")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the pod framework")
    run.add_argument("--master", required=True)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, default=8700)
    run.add_argument("--offer_ttl", type=float, default=5.0)
    submit = commands.add_parser("submit", help="submit a pod (JSON or YAML file, - for stdin)")
    submit.add_argument("--api", default="127.0.0.1:8700")
    submit.add_argument("file")
    listing = commands.add_parser("list", help="list pods")
    listing.add_argument("--api", default="127.0.0.1:8700")
    args = parser.parse_args(argv)
    if args.command == "serve":
        logging.basicConfig(level=logging.INFO)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args.master, args.host, args.port, args.offer_ttl))
        return 0
    api = f"http://{args.api.removeprefix('http://')}"
    if args.command == "submit":
        try:
            body = sys.stdin.buffer.read() if args.file == "-" else open(args.file, "rb").read()  # noqa: SIM115
        except OSError as exc:
            print(f"pods: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return 1
        kind = "application/json" if args.file.endswith(".json") else "application/yaml"
        print(json.dumps(_request(f"{api}/pods", body, kind)))
        return 0
    pods = _request(f"{api}/pods")
    assert isinstance(pods, dict)
    for pod in pods["pods"]:
        print(f"{pod['name']:<24} {pod['phase']:<10} {pod['node'] or '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
