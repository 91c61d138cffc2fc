"""Store URLs read into targets: one server or a Cluster, and mezzo's own options, which
redis-py never sees."""

from __future__ import annotations

import pytest

from mezzo.store.factory import store_for_url
from mezzo.store.redis import RedisStore
from mezzo.store.redis_server import RedisConfigError
from mezzo.store.redis_target import parse_target


def test_one_server_keeps_redis_py_options_and_loses_mezzos() -> None:
    target = parse_target(
        "redis://:secret@10.0.0.1:6380/2?socket_timeout=3&partitions=4&durability=replicated"
    )
    assert not target.cluster
    assert target.redis_url == "redis://:secret@10.0.0.1:6380/2?socket_timeout=3"
    assert (target.partitions, target.durability, target.replica_wait_ms) == (4, "replicated", 1000)
    assert "secret" not in target.where


def test_a_cluster_url_names_its_seeds_and_credentials() -> None:
    target = parse_target(
        "rediss+cluster://app:p%40ss@a:7000,b:7001,[::1]:7002?replica_wait_ms=250"
    )
    assert target.cluster and target.tls
    assert target.seeds == (("a", 7000), ("b", 7001), ("::1", 7002))
    assert (target.username, target.password) == ("app", "p@ss")
    assert (target.partitions, target.durability, target.replica_wait_ms) == (None, "async", 250)
    assert target.where == "rediss+cluster://a:7000,b:7001,[::1]:7002"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://a:1", "not a Redis URL"),
        ("redis://a:1/0?durability=always", "durability must be"),
        ("redis://a:1/0?partitions=2000", "partitions must be"),
        ("redis://a:1/0?partitions=2&partitions=3", "given twice"),
        ("redis+cluster://a:1?replica_wait_ms=x", "replica_wait_ms must be"),
        ("redis+cluster://a:1,", "want host:port"),
    ],
)
def test_bad_urls_are_refused_in_mezzos_words(url: str, message: str) -> None:
    with pytest.raises(RedisConfigError, match=message):
        parse_target(url)


def test_the_factory_opens_a_cluster_from_its_url() -> None:
    store = store_for_url("redis+cluster://127.0.0.1:7000")
    assert isinstance(store, RedisStore) and store.cluster
