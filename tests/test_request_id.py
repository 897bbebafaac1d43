"""x-request-id: a version-4 UUID from the seed and the stream number, as uuid.UUID makes it."""

from __future__ import annotations

import random
import uuid

from pwcli.engine.messages import request_id


def test_the_same_uuid_as_the_uuid_module_with_one_generator_or_many() -> None:
    rng = random.Random()
    for seed in (0, 1, 42, 2**40):
        for stream in (*range(0, 300), 10**6, 2**31):
            expected = str(uuid.UUID(int=random.Random(f"{seed}:{stream}").getrandbits(128),
                                     version=4))
            assert request_id(seed, stream) == expected
            assert request_id(seed, stream, rng) == expected  # reseeded, not carried over


def test_the_example_trace_keeps_its_request_id() -> None:
    assert request_id(0, 0) == "e174956c-92b5-464e-acdb-d99895aeee42"
