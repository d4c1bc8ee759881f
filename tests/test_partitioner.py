"""The producer's partitioner puts every key where aiokafka's (the Java client's) does."""

from __future__ import annotations

import random

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference_murmur2

from gateway.destinations.kafka import murmur2, partition_for


def test_murmur2_is_bit_identical_to_aiokafka() -> None:
    """Every key length (word-aligned and each tail size), random bytes: the same hash."""
    rng = random.Random(11)
    for length in range(0, 130):
        for _ in range(20):
            key = rng.randbytes(length)
            assert murmur2(key) == reference_murmur2(key)


def test_partition_matches_the_default_partitioner() -> None:
    """Same partition for the same key and partition count, so per-key order holds."""
    rng = random.Random(12)
    default = DefaultPartitioner()
    for _ in range(2000):
        key = rng.randbytes(rng.randrange(1, 64))
        partitions = list(range(rng.randrange(1, 100)))
        assert partition_for(key, partitions, partitions) == default(key, partitions, partitions)
    assert partition_for(None, [0, 1, 2], [1]) == 1  # keyless: an available partition
