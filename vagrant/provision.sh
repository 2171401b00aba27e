#!/usr/bin/env bash
# Provision one node of the cluster; every provider runs this same script (the docker provider
# as the node's command, VMs as a shell provisioner), and so may a person on a fresh Debian 12.
# Environment (the Vagrantfile sets it): ROLE (master|agent), NODE_NAME, NODE_IP, MASTERS (the
# masters' addresses, comma separated), ZK (zk://... when there are several masters, else
# empty), QUORUM, NODE_INDEX.
#
# It installs what is missing (Debian's python3, supervisor, zookeeper on masters, docker.io on
# agents), installs the project from the checkout (/vagrant) into /opt/agent-runtime, from
# /vagrant/vagrant/.wheels when the host built one (no index reachable) or from the index, and
# runs the daemons under supervisord with real flags. Run again, it reinstalls and restarts.
set -euo pipefail
: "${ROLE:?}" "${NODE_NAME:?}" "${NODE_IP:?}" "${MASTERS:?}"
ZK="${ZK:-}"
SRC=/vagrant
VENV=/opt/agent-runtime
as_pid1=false
[ "$$" -eq 1 ] && as_pid1=true   # the docker provider: we are the node's init

need=()
for pkg in python3 python3-venv supervisor procps iptables; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ "$ROLE" = master ] && [ -n "$ZK" ]; then
  dpkg -s zookeeper >/dev/null 2>&1 || need+=(zookeeper)
fi
if [ "$ROLE" = agent ]; then dpkg -s docker.io >/dev/null 2>&1 || need+=(docker.io); fi
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
if [ -d "$SRC/vagrant/.wheels" ]; then
  "$VENV/bin/pip" install -q --no-index --find-links="$SRC/vagrant/.wheels" agent-runtime
else
  "$VENV/bin/pip" install -q "$SRC"
fi

conf=/etc/supervisor/conf.d
mkdir -p "$conf" /var/log/mesos
program() {  # name, command
  printf '[program:%s]\ncommand=%s\nautorestart=true\nstartsecs=1\nstartretries=1000\nstopasgroup=true\n' \
    "$1" "$2" >"$conf/$1.conf"
  printf 'redirect_stderr=true\nstdout_logfile=/var/log/mesos/%s.log\n' "$1" >>"$conf/$1.conf"
}
master_flags=(--hostname="$NODE_NAME" --port=5050 --work_dir=/var/lib/mesos)
if [ "$ROLE" = master ]; then
  if [ -n "$ZK" ]; then
    mkdir -p /var/lib/zookeeper
    echo "${NODE_INDEX:-1}" >/var/lib/zookeeper/myid
    {
      printf 'tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/var/lib/zookeeper\n'
      printf 'clientPort=2181\nadmin.enableServer=false\n'
      i=1
      for ip in ${MASTERS//,/ }; do echo "server.$i=$ip:2888:3888"; i=$((i + 1)); done
    } >/etc/zookeeper/conf/zoo.cfg
    program zookeeper "/usr/share/zookeeper/bin/zkServer.sh start-foreground"
    master_flags+=(--ip="$NODE_IP" --zk="$ZK" --quorum="${QUORUM:-2}")
  else
    # One master: it also answers on the address the host's published port reaches.
    master_flags+=(--ip=0.0.0.0)
  fi
  program mesos-master "$VENV/bin/mesos-master ${master_flags[*]}"
else
  master="${ZK:-${MASTERS%%,*}:5050}"
  if $as_pid1; then
    # Docker inside a container: vfs, as overlay on overlay does not mount.
    program dockerd "/usr/sbin/dockerd --storage-driver=vfs"
  else
    systemctl enable --now docker
  fi
  agent_flags=(--master="$master" --ip="$NODE_IP" --advertise_ip="$NODE_IP"
    --hostname="$NODE_NAME" --port=5051 --work_dir=/var/lib/mesos-agent
    --containerizers=mesos,docker --docker_registry="$SRC/vagrant/.images"
    --image_providers=docker --cgroups_root="mesos-$NODE_NAME"
    --isolation=cgroups/cpu,cgroups/mem,filesystem/linux,docker/runtime
    --registration_backoff_factor=500ms)
  program mesos-agent "$VENV/bin/mesos-agent ${agent_flags[*]}"
fi

if $as_pid1; then
  exec /usr/bin/supervisord -n -c /etc/supervisor/supervisord.conf
fi
systemctl enable supervisor
systemctl restart supervisor
