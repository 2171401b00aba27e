"""``--advertise_ip``/``--advertise_port``: where others are told to reach a master or agent (one
behind NAT, or in a container whose port is published elsewhere), not what it binds."""

from __future__ import annotations

import os

from tests.harness.cluster import agent_state, get_json, running_cluster


def test_the_master_advertises_what_it_is_told_and_serves_where_it_is_bound(
        tmp_path: os.PathLike[str]) -> None:
    flags = ["--advertise_ip=192.0.2.7", "--advertise_port=15050"]
    with running_cluster(str(tmp_path), agents=1, master_flags=flags) as cluster:
        state = get_json(cluster.master_url + "/master/state")
        assert state["pid"] == state["leader"] == "master@192.0.2.7:15050"
        address = state["leader_info"]["address"]
        assert (address["ip"], address["port"]) == ("192.0.2.7", 15050)
        assert state["leader_info"]["port"] == 15050
        # The agent found it where it is bound (--master), and registered there.
        assert [a["active"] for a in state["slaves"]] == [True]


def test_without_advertise_flags_the_bound_address_is_advertised(
        tmp_path: os.PathLike[str]) -> None:
    with running_cluster(str(tmp_path), agents=0) as cluster:
        state = get_json(cluster.master_url + "/master/state")
        assert state["pid"] == f"master@127.0.0.1:{cluster.port}"
        assert state["leader_info"]["address"]["port"] == cluster.port


def test_an_agent_advertises_its_advertise_ip_and_port(tmp_path: os.PathLike[str]) -> None:
    flags = ["--advertise_ip=192.0.2.8", "--advertise_port=15051"]
    with running_cluster(str(tmp_path), agents=1, agent_flags=flags) as cluster:
        (agent,) = get_json(cluster.master_url + "/master/slaves")["slaves"]
        assert agent["pid"] == "slave(1)@192.0.2.8:15051"
        assert agent["port"] == 15051
        # Bound where it was told to listen: its own endpoints answer there.
        assert agent_state(cluster)["id"] == agent["id"]
