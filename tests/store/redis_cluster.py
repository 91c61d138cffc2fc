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
        """Until every live node says `cluster_state:ok` and agrees on 3 covered primaries."""
        deadline = time.monotonic() + timeout
        while True:
            if all(self._ok(node) for node in self.nodes if node.process is not None):
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
