"""Check keys: their fingerprint is the stable hash of their fields, however often it is asked."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from driftguard.model import CheckKey, CheckKind, stable_hash

names = st.text(min_size=1, max_size=12)
keys = st.builds(
    CheckKey,
    source=names,
    table=st.one_of(st.just(""), names),
    check=st.sampled_from(list(CheckKind)),
    metric=names,
    column=st.one_of(st.none(), names),
    segment=st.one_of(st.none(), names),
)


@given(key=keys, other=keys)
def test_a_fingerprint_is_the_stable_hash_of_the_fields_even_after_a_copy(
    key: CheckKey, other: CheckKey
) -> None:
    def expected(k: CheckKey) -> str:
        return stable_hash(k.source, k.table, k.check.value, k.metric, k.column, k.segment)

    assert key.fingerprint == expected(key)
    assert key.fingerprint == key.fingerprint  # remembered, still the same
    changed = key.model_copy(update={"segment": other.segment, "table": other.table})
    assert changed.fingerprint == expected(changed)
    assert (changed.fingerprint == key.fingerprint) == (
        (changed.segment, changed.table) == (key.segment, key.table)
    )
