"""``mesos-execute`` and ``mesos-local`` as a user runs them."""

from __future__ import annotations

import glob
import os
import subprocess

from tests.harness.cluster import VENV_BIN, Cluster, get_json
from tests.harness.execute import execute


def _sandbox_file(cluster: Cluster, task_id: str, name: str) -> str:
    pattern = os.path.join(cluster.work_dir, "agent0", "slaves", "*", "frameworks", "*",
                           "executors", task_id, "runs", "*", name)
    (path,) = [p for p in glob.glob(pattern) if "/runs/latest/" not in p]
    with open(path) as handle:
        return handle.read()


def test_execute_echo_finishes_with_output_in_sandbox(cluster: Cluster) -> None:
    done = execute(cluster, "--name=test", "--command=echo hi")
    assert done.returncode == 0, done.stdout + done.stderr
    states = [line.split()[3] for line in done.stdout.splitlines()
              if line.startswith("Received status update")]
    assert states == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert _sandbox_file(cluster, "test", "stdout") == "hi\n"
    # The sandbox also has the `latest` link, as Mesos lays it out.
    latest = glob.glob(os.path.join(cluster.work_dir, "agent0", "slaves", "*", "frameworks",
                                    "*", "executors", "test", "runs", "latest"))
    assert latest and os.path.islink(latest[0])


def test_execute_failure_exits_nonzero_with_status(cluster: Cluster) -> None:
    done = execute(cluster, "--name=fails", "--command=echo oops >&2; exit 3")
    assert done.returncode != 0
    assert "TASK_FAILED" in done.stdout
    assert "Command exited with status 3" in done.stdout
    assert _sandbox_file(cluster, "fails", "stderr").endswith("oops\n")


def test_execute_shell_false_runs_argv_without_a_shell(cluster: Cluster) -> None:
    done = execute(cluster, "--name=noshell", "--shell=false", "--command=/bin/echo",
                    "--env={\"GREETING\": \"x\"}")
    assert done.returncode == 0, done.stdout + done.stderr
    # With shell=false the value is the program; there are no further arguments.
    assert _sandbox_file(cluster, "noshell", "stdout") == "\n"
    done = execute(cluster, "--name=env", "--command=echo $GREETING $MESOS_SANDBOX",
                    "--env={\"GREETING\": \"hello\"}")
    assert done.returncode == 0
    out = _sandbox_file(cluster, "env", "stdout").split()
    assert out[0] == "hello" and out[1].endswith("/runs/" + out[1].rsplit("/", 1)[1])


def test_execute_bad_flags_exit_with_one_line(cluster: Cluster) -> None:
    done = execute(cluster, "--name=x", "--command=true", "--resources=cpus:-1")
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    done = execute(cluster, "--name=x", "--command=true", "--no_such_flag=1")
    assert done.returncode != 0
    assert "no_such_flag" in done.stderr
    assert get_json(cluster.master_url + "/master/frameworks")["frameworks"] == []


def test_mesos_local_runs_a_task() -> None:
    done = subprocess.run(
        [os.path.join(VENV_BIN, "mesos-local"), "--port=0", "--num_agents=2",
         "--command=echo from-local"],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "with 2 agent(s)" in done.stdout
    assert "TASK_FINISHED" in done.stdout
    assert done.stdout.rstrip().endswith("from-local")
