"""A local Redis Cluster (3 masters, each with a replica) and a Sentinel set (a master, a
replica, 3 sentinels), from Debian's redis-server and redis-sentinel on loopback ports."""
import shutil
import subprocess
import tempfile
import time

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.sentinel import Sentinel

from .servers import free_port, wait_for_port

SERVICE = "gwmaster"


def _wait(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except redis.RedisError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} within {timeout} s")


def distinct_ports(count, taken=()):
    ports = []
    while len(ports) < count:
        port = free_port()
        if port not in ports and port not in taken:
            ports.append(port)
    return ports


class _Processes:
    def __init__(self, prefix):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.processes = []

    def spawn(self, *command):
        process = subprocess.Popen(list(command), cwd=self.dir,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.processes.append(process)
        return process

    def stop(self):
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_server(processes, port, *options):
    processes.spawn("redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", processes.dir, *options)
    if not wait_for_port(port):
        raise RuntimeError(f"redis-server on {port} did not start")


class LocalCluster:
    """3 masters and 3 replicas; ``url`` is the gateway's REDIS_URL for it."""

    def __init__(self, masters=3):
        self.masters = masters
        self.processes = _Processes("gw-cluster-")
        self.ports = distinct_ports(2 * masters)
        self.bus_ports = distinct_ports(2 * masters, taken=self.ports)

    @property
    def url(self):
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports[:self.masters])

    def start(self):
        for port, bus_port in zip(self.ports, self.bus_ports):
            # the bus port named, not port + 10000 (which may be outside the tests' ports)
            redis_server(self.processes, port, "--cluster-enabled", "yes", "--cluster-port", str(bus_port),
                         "--cluster-config-file", f"nodes-{port}.conf", "--cluster-node-timeout", "2000")
        subprocess.run(["redis-cli", "--cluster", "create",
                        *[f"127.0.0.1:{port}" for port in self.ports],
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        _wait(self.healthy, 30, "the cluster did not come up")
        return self

    def node(self, port):
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)

    def healthy(self):
        for port in self.ports:
            info = self.node(port).cluster("info")
            if info["cluster_state"] != "ok":
                return False
        roles = [self.node(port).execute_command("ROLE")[0] for port in self.ports]
        replicas_synced = all(self.node(port).info("replication").get("master_link_status") == "up"
                              for port, role in zip(self.ports, roles) if role == b"slave")
        return roles.count(b"master") == self.masters and replicas_synced

    def client(self):
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in self.ports],
                            socket_timeout=2)

    def master_of(self, key):
        """The port of the master serving ``key``'s slot, by that master's own word: a node
        states its own role and slots at once, while the others' view of a failover (which a
        client's slot map is read from) waits for gossip."""
        slot = key_slot(key.encode())
        for port in self.ports:
            if self.node(port).execute_command("ROLE")[0] == b"master" and slot in self.own_slots(port):
                return port
        raise RuntimeError(f"no master claims slot {slot}")

    def own_slots(self, port):
        """The slots the node on ``port`` says it serves (its ``myself`` line of CLUSTER NODES)."""
        lines = self.node(port).execute_command("CLUSTER", "NODES")
        lines = lines.decode() if isinstance(lines, bytes) else lines
        myself = next(line for line in lines.splitlines() if "myself" in line.split()[2])
        slots = set()
        for span in myself.split()[8:]:
            if not span.startswith("["):   # a slot being migrated, listed in brackets
                first, _, last = span.partition("-")
                slots.update(range(int(first), int(last or first) + 1))
        return slots

    def fail_over(self, master_port):
        """A manual failover (CLUSTER FAILOVER on the master's replica: the replica catches
        up with the master before taking over, so no acknowledged write is lost)."""
        replica = next(port for port in self.ports if port != master_port
                       and self.node(port).execute_command("ROLE")[0] == b"slave"
                       and self.node(port).info("replication")["master_port"] == master_port)
        self.node(replica).execute_command("CLUSTER", "FAILOVER")
        _wait(lambda: self.node(replica).execute_command("ROLE")[0] == b"master", 20,
              "the replica did not take over")
        _wait(self.healthy, 30, "the cluster did not settle after the failover")
        return replica

    def flush(self):
        for port in self.ports:
            node = self.node(port)
            if node.execute_command("ROLE")[0] == b"master":
                node.flushall()

    def stop(self):
        self.processes.stop()


class LocalSentinelSet:
    """A master, a replica and 3 sentinels watching them as ``SERVICE``."""

    def __init__(self):
        self.processes = _Processes("gw-sentinel-")
        self.master_port, self.replica_port, *self.sentinel_ports = distinct_ports(5)

    @property
    def url(self):
        return ("redis+sentinel://" + ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)
                + f"/{SERVICE}")   # limits' form too (flask-limiter's storage_uri takes it)

    def start(self):
        redis_server(self.processes, self.master_port)
        redis_server(self.processes, self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        for port in self.sentinel_ports:
            config = f"{self.processes.dir}/sentinel-{port}.conf"
            with open(config, "w", encoding="utf-8") as handle:
                handle.write(f"port {port}\nbind 127.0.0.1\nsentinel monitor {SERVICE} 127.0.0.1 "
                             f"{self.master_port} 2\nsentinel down-after-milliseconds {SERVICE} 1000\n"
                             f"sentinel failover-timeout {SERVICE} 5000\n")
            self.processes.spawn("redis-sentinel", config)
            if not wait_for_port(port):
                raise RuntimeError(f"redis-sentinel on {port} did not start")
        _wait(self.watched, 30, "the sentinels did not see the master and its replica")
        return self

    def sentinel(self, port):
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, decode_responses=True)

    def watched(self):
        for port in self.sentinel_ports:
            master = self.sentinel(port).sentinel_master(SERVICE)
            if master["num-slaves"] < 1 or master["num-other-sentinels"] < 2:
                return False
        return self.replica_synced()

    def replica_synced(self):
        port = self.replica_port if self.master() == self.master_port else self.master_port
        return redis.Redis(port=port, socket_timeout=2).info("replication").get("master_link_status") == "up"

    def master(self):
        return int(self.sentinel(self.sentinel_ports[0]).sentinel_get_master_addr_by_name(SERVICE)[1])

    def client(self):
        return Sentinel([("127.0.0.1", port) for port in self.sentinel_ports],
                        socket_timeout=2).master_for(SERVICE, socket_timeout=2)

    def fail_over(self):
        """SENTINEL FAILOVER: the replica becomes the master, the old master its replica."""
        before = self.master()
        self.sentinel(self.sentinel_ports[0]).execute_command("SENTINEL", "FAILOVER", SERVICE)
        _wait(lambda: all(int(self.sentinel(port).sentinel_get_master_addr_by_name(SERVICE)[1]) != before
                          for port in self.sentinel_ports), 30, "the sentinels did not fail over")
        _wait(self.replica_synced, 30, "the old master did not follow the new one")
        return self.master()

    def flush(self):
        redis.Redis(port=self.master(), socket_timeout=2).flushall()

    def stop(self):
        self.processes.stop()
