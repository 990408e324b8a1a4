"""Pseudonymisation: identifiers become keyed hashes before anything leaves ingestion."""

from __future__ import annotations

import hashlib
import hmac
import os

# what a run writes in place of a secret given in its config (pipelines/common.py)
REDACTED = "<redacted>"
KEY_HEX_CHARS = 20  # 80 bits: collisions are negligible at hospital scale (1e7 keys -> ~1e-10)


def resolve_secret(secret: str | None, secret_env: str | None) -> str:
    """The pseudonymisation secret: given directly, or read from an environment variable.

    Raises:
        ValueError: when neither yields a non-empty secret; the message names the variable.
    """
    if secret == REDACTED:
        raise ValueError(
            "the pseudonymisation secret reads <redacted>: this config was saved by a run, which "
            "never writes the secret; export the site's secret in the environment variable "
            f"{secret_env or 'MEDREP_PSEUDONYM_SECRET'} (or set privacy.secret)"
        )
    if secret:
        return str(secret)
    if secret_env and os.environ.get(secret_env):
        return os.environ[secret_env]
    where = f"the environment variable {secret_env}" if secret_env else "privacy.secret_env"
    raise ValueError(
        "no pseudonymisation secret: set privacy.secret in the site config or export "
        f"{where}; keep the same secret for every ingest of a site so keys stay stable"
    )


def pseudonymise(value: str, secret: str, namespace: str) -> str:
    """A keyed hash (HMAC-SHA256) of an identifier, hex, namespaced by the kind of identifier.

    Without the secret the key cannot be reversed by hashing candidate identifiers, and the
    namespace keeps a PatientID from colliding with an accession number of the same text.
    """
    if not value:
        raise ValueError(f"cannot pseudonymise an empty {namespace}")
    # surrogateescape: an identifier taken from a file name that is not UTF-8 (the operating
    # system hands its bytes over as lone surrogates) hashes its bytes; UTF-8 text is unchanged
    message = f"{namespace}\x00{value}".encode("utf-8", "surrogateescape")
    mac = hmac.new(secret.encode(), message, hashlib.sha256)
    return mac.hexdigest()[:KEY_HEX_CHARS]


def unit_interval(key: str, salt: str) -> float:
    """A stable pseudo-random number in [0, 1) derived from a key (used for patient splits)."""
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_split(patient_key: str, fractions: dict[str, float], salt: str = "medrep-split") -> str:
    """Assign a patient to a split by a hash of its key.

    A patient's split depends only on its key, the fractions and the salt: adding data never
    moves an existing patient, and all of a patient's images share one split.
    """
    total = sum(fractions.values())
    if total <= 0 or any(v < 0 for v in fractions.values()):
        raise ValueError(f"split fractions must be non-negative with a positive sum: {fractions}")
    u = unit_interval(patient_key, salt) * total
    acc = 0.0
    names = list(fractions)
    for name in names:
        acc += fractions[name]
        if u < acc:
            return name
    return names[-1]
