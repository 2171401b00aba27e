"""Hosts as network namespaces on one machine: a multi-node cluster for tests and for trying
things out (``scripts/cluster.sh``), each master, agent and ZooKeeper on an address of its own.

- ``network.py``: the namespaces, their addresses and the wire between them (a kernel bridge
  with veth pairs, or ``switch.py``'s userspace switch where loss and delay are wanted).
- ``switch.py``: an Ethernet switch over TAP devices that drops and delays frames per port (the
  kernels we run on may lack netem).
- ``cluster.py``: ZooKeeper, masters and agents started in their hosts, waited for, torn down.
- ``main.py``: the command.
"""
