"""Which listed files ingestion may open: inside the export, regular, each once.

Checked on the path alone, before any file is opened, so that a table naming `/etc/passwd` or
`../../other_site/x.dcm`, or a link leading out of the export, is refused without being read.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the adapters import this module (is_under): no import at run time
    from medrep.data.adapters.base import ImageRecord

# (record, reason code, message) for each refused record
Refusal = tuple["ImageRecord", str, str]


def is_under(path: str, root: str) -> bool:
    """Whether `path` is `root` or lies below it (both absolute and normalised)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def is_regular_file(path: str) -> bool:
    """A regular file (after links): not a FIFO, device, socket or folder, which would block a
    reader or mean nothing to it."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return False


def safe_text(text: str) -> str:
    """A path or name as valid UTF-8: bytes of a file name that are not UTF-8 (the operating
    system hands them over as lone surrogates) become `\\xNN` escapes, so that the manifest and
    the ledger can be written and still say which file it was."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def admit_records(
    records: Sequence[ImageRecord], root: str | None, follow_symlinks: bool
) -> tuple[list[ImageRecord], list[Refusal]]:
    """The records whose file may be read, each with its resolved path, and the refused ones.

    A path outside `root` (after `..`, or absolute) is `outside_export`; a path through a
    symbolic link is `symlink`, or with `follow_symlinks` is read only when the link resolves
    inside `root` (`outside_export` else, `missing_file` when it leads nowhere); what is not a
    regular file (a FIFO, a device, a folder) is `unsupported_file`; a file already listed under
    another spelling (`a/../f.png` and `f.png`, or a link and its target) is `duplicate_file`.
    Without a root (an adapter that declares none) only links, file types and duplicate
    spellings are checked.
    """
    root_abs = os.path.abspath(root) if root else None
    root_real = os.path.realpath(root) if root else None
    admitted: list[ImageRecord] = []
    refused: list[Refusal] = []
    seen: dict[str, str] = {}
    for rec in records:
        lexical = os.path.abspath(rec.path)
        if root_abs and not is_under(lexical, root_abs):
            refused.append((rec, "outside_export", "the path leaves the export root"))
            continue
        real = os.path.realpath(lexical)
        if root_abs and root_real:
            linked = os.path.relpath(real, root_real) != os.path.relpath(lexical, root_abs)
        else:
            linked = real != lexical
        if linked and not follow_symlinks:
            refused.append((rec, "symlink", "reached through a link; not followed"))
            continue
        if root_real and not is_under(real, root_real):
            refused.append((rec, "outside_export", "a link that leaves the export"))
            continue
        if not os.path.lexists(real) or (linked and not os.path.exists(real)):
            refused.append((rec, "missing_file", "a link to nothing" if linked else "not found"))
            continue
        if not is_regular_file(real):
            refused.append((rec, "unsupported_file", "not a regular file (a folder, FIFO, device)"))
            continue
        if real in seen:
            refused.append((rec, "duplicate_file", f"the same file as {safe_text(seen[real])}"))
            continue
        seen[real] = rec.source
        admitted.append(replace(rec, path=real))
    return admitted, refused
