"""The preprocessed image cache: one memory-mapped array plus a metadata file that guards it.

`images.npy` holds [n_slots, size, size] integers; `cache_meta.json` holds the preprocessing
parameters and the hash of the manifest whose `cache_index` column addresses the slots. Opening
a cache under different parameters or another manifest is refused, so a stale cache can never
be paired with the wrong rows.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medrep.data.images import dequantize

ARRAY_NAME = "images.npy"
META_NAME = "cache_meta.json"
CACHE_FORMAT = 1


def file_hash(path: str | Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def frame_hash(df: pd.DataFrame) -> str:
    """sha256 of a table's canonical CSV form (independent of the parquet writer's version)."""
    return hashlib.sha256(df.to_csv(index=False).encode()).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    """Write a text file under a temporary name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class CacheMismatchError(RuntimeError):
    """The cache on disk was built with other parameters or for another manifest."""


def create_cache(directory: Path, n_slots: int, size: int, dtype: str) -> np.memmap:
    """A new writable array for `n_slots` images (written under a temporary name)."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{ARRAY_NAME}.tmp"
    return np.lib.format.open_memmap(
        tmp, mode="w+", dtype=np.dtype(dtype), shape=(n_slots, size, size)
    )


def stage_cache(
    directory: Path, params: dict[str, Any], manifest_sha256: str
) -> list[tuple[Path, Path]]:
    """Write the metadata of the array `create_cache` made under a temporary name.

    Returns the (temporary, final) renames that publish the cache, metadata last (its presence
    marks completion); `finalize_cache` performs them.
    """
    meta = {"format": CACHE_FORMAT, "params": params, "manifest_sha256": manifest_sha256}
    meta_tmp = directory / f".{META_NAME}.tmp"
    meta_tmp.write_text(json.dumps(meta, indent=2, sort_keys=True))
    return [
        (directory / f".{ARRAY_NAME}.tmp", directory / ARRAY_NAME),
        (meta_tmp, directory / META_NAME),
    ]


def finalize_cache(directory: Path, params: dict[str, Any], manifest_sha256: str) -> None:
    """Rename the array into place and write its metadata last (its presence marks completion)."""
    for tmp, final in stage_cache(directory, params, manifest_sha256):
        os.replace(tmp, final)


class ImageCache:
    """Read-only view of a finished cache.

    Args:
        directory: folder holding `images.npy` and `cache_meta.json`.
        expected_params: if given, must equal the parameters the cache was built with.
        manifest_sha256: if given, must equal the hash of the manifest the cache was built for.
    """

    def __init__(
        self,
        directory: str | Path,
        expected_params: dict[str, Any] | None = None,
        manifest_sha256: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        meta_path = self.directory / META_NAME
        if not meta_path.exists():
            raise FileNotFoundError(
                f"{meta_path} not found: the cache is missing or unfinished; run ingest"
            )
        self.meta = json.loads(meta_path.read_text())
        if expected_params is not None and self.meta["params"] != expected_params:
            raise CacheMismatchError(
                f"{self.directory}: built with {self.meta['params']}, asked for {expected_params}; "
                "re-run ingest with this configuration"
            )
        if manifest_sha256 is not None and self.meta["manifest_sha256"] != manifest_sha256:
            raise CacheMismatchError(
                f"{self.directory}: built for manifest {self.meta['manifest_sha256'][:12]}, "
                f"not {manifest_sha256[:12]}; re-run ingest"
            )
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        # opened lazily so that a cache object pickled into DataLoader workers maps its own file
        if self._array is None:
            self._array = np.load(self.directory / ARRAY_NAME, mmap_mode="r")
        return self._array

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_array"] = None
        return state

    def __len__(self) -> int:
        return int(self.array.shape[0])

    @property
    def size(self) -> int:
        return int(self.array.shape[-1])

    def stored(self, index: int) -> np.ndarray:
        """[size, size] as stored (the cache's integer type), copied out of the map."""
        return np.array(self.array[index])

    def image(self, index: int) -> np.ndarray:
        """float32 [size, size] in [0, 1]."""
        return dequantize(np.asarray(self.array[index]))
