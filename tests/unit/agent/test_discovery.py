"""Resource discovery. There is no GPU on this machine: the GPU cases use a fake NVML module
standing in for nvidia-ml-py's ``pynvml``; the real library is checked to report none here."""

from __future__ import annotations

import os
import sys
import types

import psutil
import pytest

from agent_runtime.agent import discovery


def _fake_nvml(count: int) -> types.ModuleType:
    module = types.ModuleType("pynvml")
    calls: list[str] = []
    module.nvmlInit = lambda: calls.append("init")  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: count  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: calls.append("shutdown")  # type: ignore[attr-defined]
    module.calls = calls  # type: ignore[attr-defined]
    return module


def test_gpus_come_from_nvml_only_with_the_gpu_isolator(
        tmp_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_nvml(2)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    with_gpus = discovery.detect(str(tmp_path), None, "*", "cgroups/cpu,gpu/nvidia")
    assert with_gpus.scalar("gpus") == 2
    assert fake.calls == ["init", "shutdown"]
    without = discovery.detect(str(tmp_path), None, "*", "posix/cpu,posix/mem")
    assert without.scalar("gpus") == 0


def test_nvml_failure_means_no_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = _fake_nvml(1)

    def fail() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert discovery.detect_gpus() == 0


def test_real_nvml_finds_no_gpu_on_this_machine() -> None:
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("this machine has an NVIDIA device")
    assert discovery.detect_gpus() == 0


def test_detected_host_resources_follow_mesos(tmp_path: str) -> None:
    found = discovery.detect(str(tmp_path), None, "*", "posix/cpu")
    assert found.scalar("cpus") == os.cpu_count()
    total_mb = psutil.virtual_memory().total // (1024 * 1024)
    expected = total_mb - 1024 if total_mb >= 2048 else total_mb // 2
    assert found.scalar("mem") == expected
    assert found.scalar("disk") > 0
    assert "ports:[31000-32000]" in found.text()


def test_flag_resources_replace_detection(tmp_path: str) -> None:
    found = discovery.detect(str(tmp_path), "cpus:3;mem:100;cpus(ads):2", "*", "gpu/nvidia")
    assert found.scalar("cpus") == 5 and found.scalar("mem") == 100  # 3 unreserved + 2 (ads)
    assert "cpus(ads):2" in found.text()
    assert found.scalar("disk") > 0  # not named, so still detected
