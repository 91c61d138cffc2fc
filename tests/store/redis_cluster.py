"""A real Redis Cluster on loopback for tests: 3 primaries and 3 replicas, node timeout 1 s.

Started once per test session (`loopback_cluster` in conftest.py) and once more by the failover
test, which kills one of its nodes. Each node is a `RedisProcess` with a cluster bus port of its
own (`--cluster-port`; the default, port + 10000, may not exist above 55535).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import redis
from redis_process import RedisProcess, free_port

NODE_TIMEOUT_MS = 1000


class RedisClusterProcess:
    """`primaries` primaries with `replicas` replicas each, every slot covered."""

    def __init__(self, folder: Path, *, primaries: int = 3, replicas: int = 1) -> None:
        self.folder = folder
        self.replicas = replicas
        self.nodes = [
            RedisProcess(
                folder / f"node-{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-port",
                str(free_port()),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--cluster-config-file",
                "nodes.conf",
                "--appendonly",
                "no",
            )
            for i in range(primaries * (1 + replicas))
        ]

    @property
    def url(self) -> str:
        """A `redis+cluster://` URL naming every node as a seed."""
        seeds = ",".join(f"127.0.0.1:{node.port}" for node in self.nodes)
        return f"redis+cluster://{seeds}"

    def start(self) -> RedisClusterProcess:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [
                "redis-cli",
                "--cluster",
                "create",
                *addresses,
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_ok()
        return self

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says `cluster_state:ok`, every primary has its replicas and
        every replica's link to its primary is up (a `WAIT` would see them)."""
        deadline = time.monotonic() + timeout
        while True:
            live = [node for node in self.nodes if node.process is not None]
            if all(self._ok(node) and self._replicating(node) for node in live):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster did not come up: see {self.folder}/*/redis.log")
            time.sleep(0.1)

    @staticmethod
    def _ok(node: RedisProcess) -> bool:
        client = redis.Redis(port=node.port, socket_timeout=1)
        try:
            info = client.execute_command("CLUSTER", "INFO")
            text = info.decode() if isinstance(info, bytes) else str(info)
            return "cluster_state:ok" in text
        except redis.RedisError:
            return False
        finally:
            client.close()

    def _replicating(self, node: RedisProcess) -> bool:
        client = redis.Redis(port=node.port, socket_timeout=1, decode_responses=True)
        try:
            info = client.info("replication")
        except redis.RedisError:
            return False
        finally:
            client.close()
        if info.get("role") == "master":
            return int(info.get("connected_slaves", 0)) >= self.replicas
        return info.get("master_link_status") == "up"

    def primary_of(self, key: str) -> RedisProcess:
        """The node that holds `key`'s slot now."""
        for node in self.nodes:
            if node.process is None:
                continue
            client = redis.Redis(port=node.port, socket_timeout=1, decode_responses=True)
            try:
                slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
                for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end):
                        port = int(primary[1])
                        return next(n for n in self.nodes if n.port == port)
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError(f"no live node knows who holds {key!r}")

    def primaries(self) -> list[RedisProcess]:
        """The live primaries, as a live node sees them."""
        for node in self.nodes:
            if node.process is None:
                continue
            client = redis.Redis(port=node.port, socket_timeout=1, decode_responses=True)
            try:
                lines = str(client.execute_command("CLUSTER", "NODES")).splitlines()
            except redis.RedisError:
                continue
            finally:
                client.close()
            ports = {
                int(line.split()[1].split("@")[0].rsplit(":", 1)[1])
                for line in lines
                if "master" in line.split()[2] and "fail" not in line.split()[2]
            }
            return [n for n in self.nodes if n.port in ports and n.process is not None]
        raise RuntimeError("no live node")

    def move_slot(self, key: str, to: RedisProcess) -> None:
        """Migrate `key`'s slot with its keys to the primary `to`, as `redis-cli --cluster
        reshard` does slot by slot: IMPORTING, MIGRATING, MIGRATE the keys, then SETSLOT NODE."""
        source = self.primary_of(key)
        src = redis.Redis(port=source.port, decode_responses=True)
        dst = redis.Redis(port=to.port, decode_responses=True)
        try:
            slot = int(src.execute_command("CLUSTER", "KEYSLOT", key))
            src_id = src.execute_command("CLUSTER", "MYID")
            dst_id = dst.execute_command("CLUSTER", "MYID")
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", to.port, "", 0, 5000, "KEYS", *keys)
            for node in [to, source, *self.primaries()]:
                client = redis.Redis(port=node.port)
                client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", dst_id)
                client.close()
        finally:
            src.close()
            dst.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()

    def __enter__(self) -> RedisClusterProcess:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
