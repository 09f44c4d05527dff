"""The archive's digest, as the contract defines it: SHA-256 over sorted lines."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from basecone_migrate.domain.receipts import Digest, digest

A, B = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()


def test_the_digest_is_the_sha256_of_sorted_lines() -> None:
    assert digest([]) == hashlib.sha256(b"").hexdigest()
    first, second = sorted([A, B])
    assert digest([B, A]) == hashlib.sha256(f"{first}\n{second}\n".encode()).hexdigest()


def test_a_stream_must_come_sorted_once_each_in_lower_case_hex() -> None:
    running = Digest()
    first, second = sorted([A, B])
    running.add(second, 10)
    for wrong in (first, second, second.upper(), "0" * 63):
        with pytest.raises(ValueError):
            running.add(wrong)
    assert running.receipt().documents == 1 and running.receipt().bytes == 10


@given(st.sets(st.binary(max_size=8), max_size=30))
def test_any_order_gives_one_digest_and_any_change_another(contents: set[bytes]) -> None:
    shas = [hashlib.sha256(c).hexdigest() for c in contents]
    assert digest(shas) == digest(reversed(shas))
    other = hashlib.sha256(b"another document, never in the set" * 3).hexdigest()
    assert digest([*shas, other]) != digest(shas)
    if shas:
        assert digest(shas[1:]) != digest(shas)
