"""Pseudonymous keys and patient-level splits."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from medrep.data.privacy import assign_split, pseudonymise, resolve_secret


def test_keys_are_keyed_hashes() -> None:
    a = pseudonymise("MRN00012345", "secret-1", "patient")
    assert a == pseudonymise("MRN00012345", "secret-1", "patient")
    assert a != pseudonymise("MRN00012345", "secret-2", "patient")
    assert a != pseudonymise("MRN00012345", "secret-1", "study")
    assert "MRN" not in a and "12345" not in a
    # hashing candidate identifiers without the secret does not find the key
    unkeyed = {
        hashlib.sha256(f"MRN{i:08d}".encode()).hexdigest()[: len(a)] for i in range(12340, 12350)
    }
    assert a not in unkeyed


def test_secret_comes_from_config_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_secret("given", "UNUSED_VAR") == "given"
    monkeypatch.setenv("MEDREP_TEST_SECRET", "from-env")
    assert resolve_secret(None, "MEDREP_TEST_SECRET") == "from-env"
    monkeypatch.delenv("MEDREP_TEST_SECRET")
    with pytest.raises(ValueError, match="MEDREP_TEST_SECRET"):
        resolve_secret(None, "MEDREP_TEST_SECRET")
    with pytest.raises(ValueError, match="empty"):
        pseudonymise("", "s", "patient")


def test_splits_follow_fractions_and_are_stable() -> None:
    fractions = {"train": 0.7, "val": 0.15, "test": 0.15}
    keys = [pseudonymise(f"P{i}", "s", "patient") for i in range(5000)]
    splits = [assign_split(k, fractions) for k in keys]
    counts = Counter(splits)
    assert abs(counts["train"] / 5000 - 0.7) < 0.03 and abs(counts["test"] / 5000 - 0.15) < 0.03
    # a patient's split depends on its key only: adding patients never moves the old ones
    assert splits[:100] == [assign_split(k, fractions) for k in keys[:100]]
    assert [assign_split(k, fractions, salt="other") for k in keys[:200]] != splits[:200]
    with pytest.raises(ValueError):
        assign_split(keys[0], {"train": 0.0})
