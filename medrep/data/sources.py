"""Where a record came from, without the identifiers a site's folder and file names may hold.

A hospital export names folders and files after patients ("SMITH_JOHN/chest_2019-03-14.png").
Ingestion writes a `source` for every manifest row, report row and ledger entry so that a site
can find the file again; with `data.ingest.source_paths: pseudonymise` (the default for site
exports) each path component is replaced by a keyed hash of it, the extension and a table row
number (`reports.csv#row12` -> `3f9a0c1b2d4e.csv#row12`) kept. The same secret gives the same
names, so a site finds a file again with

    python -m medrep.data.sources <export root> <source from the ledger or manifest> ...

(the secret from `MEDREP_PSEUDONYM_SECRET`, or `--secret-env`), which hashes the export's paths
and prints the matching ones. Public sets whose paths hold only their publisher's
de-identified ids (CheXpert, MIMIC-CXR, IU X-ray) keep their relative paths (`auto`), which the
official retrieval lists match.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from medrep.data.privacy import pseudonymise, resolve_secret

SOURCE_MODES = ("auto", "pseudonymise", "relative")
_COMPONENT_CHARS = 12
_ROW = re.compile(r"row\d+")
# the extensions kept on a file's (last component's) hash: images, tables and archives; any other
# ending is part of the name ("Jane.Doe/" is a folder named after someone)
_FILE_EXTENSIONS = re.compile(
    r"\.(?:dcm|dicom|dic|png|jpe?g|j2k|jp2|tiff?|bmp|gif|webp|csv|tsv|txt|xml|json|parquet)"
    r"(?:\.(?:gz|bz2|xz|zip))?$|\.(?:gz|bz2|xz|zip)$",
    re.IGNORECASE,
)


def pseudonymise_source(source: str, secret: str) -> str:
    """`source` with each folder and file name replaced by a keyed hash (extension kept)."""
    path, hash_mark, anchor = source.partition("#")
    components = path.split("/")
    parts = []
    for position, part in enumerate(components):
        if part in ("", ".", ".."):
            parts.append(part)
            continue
        extension = _FILE_EXTENSIONS.search(part) if position == len(components) - 1 else None
        stem, suffix = part, ""
        if extension and extension.start() > 0:
            stem, suffix = part[: extension.start()], extension.group().lower()
        parts.append(pseudonymise(stem, secret, "path")[:_COMPONENT_CHARS] + suffix)
    if hash_mark and not _ROW.fullmatch(anchor):
        # an image id after the file ("ecgen/1.xml#CXR1_1_IM-0001-3001")
        anchor = pseudonymise(anchor, secret, "path")[:_COMPONENT_CHARS]
    return "/".join(parts) + hash_mark + anchor


# the ledger messages that name files (medrep.data.containment, medrep.data.ingest, the
# adapters' missing_file): each name is a whole source, spaces and commas included
_NAMED_FILES = (
    re.compile(r"^(?P<a>pixel-identical to )(?P<f>.+?)(?P<b> \(cached\))?$"),
    re.compile(r"^(?P<a>the same file as )(?P<f>.+)(?P<b>)$"),
    re.compile(r"^(?P<a>)(?P<f>.+?)(?P<b> is not under )(?P<g>.+)$"),
)
# anywhere else: a token holding a "/" or ending in an image or table extension
_FILE_TOKEN = re.compile(r"[^\s,;:()'\"]+")


def rewrite_message(message: str, write_source: Callable[[str], str]) -> str:
    """`message` with each file or folder name in it written by `write_source`."""
    for pattern in _NAMED_FILES:
        m = pattern.match(message)
        if m:
            out = m.group("a") + write_source(m.group("f")) + m.group("b")
            return out + (write_source(m.group("g")) if "g" in pattern.groupindex else "")

    def one(token: re.Match[str]) -> str:
        text = token.group()
        core = text.rstrip(".")
        if "/" in core or _FILE_EXTENSIONS.search(core):
            return write_source(core) + text[len(core) :]
        return text

    return _FILE_TOKEN.sub(one, message)


def source_writer(mode: str, public_paths: bool, secret: str) -> tuple[str, Callable[[str], str]]:
    """The resolved mode (`pseudonymise` or `relative`) and the function that writes a source."""
    if mode not in SOURCE_MODES:
        raise ValueError(f"data.ingest.source_paths must be one of {SOURCE_MODES}, got {mode!r}")
    if mode == "auto":
        mode = "relative" if public_paths else "pseudonymise"
    if mode == "relative":
        return mode, lambda source: source
    return mode, lambda source: pseudonymise_source(source, secret)


def locate_sources(
    root: str | Path, wanted: Sequence[str], secret: str
) -> Iterator[tuple[str, str]]:
    """(pseudonymised source, real relative path) for each file under `root` that matches."""
    targets = {w.partition("#")[0]: w for w in wanted}
    root = Path(root)
    for folder, _, files in os.walk(root):
        for name in files:
            relative = (Path(folder) / name).relative_to(root).as_posix()
            hashed = pseudonymise_source(relative, secret)
            if hashed in targets:
                yield targets[hashed], relative


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Find the files of an export behind pseudonymised `source` values."
    )
    parser.add_argument("root", help="the export's root folder (the adapter's export_root)")
    parser.add_argument("sources", nargs="+", help="values of a ledger or manifest `source`")
    parser.add_argument("--secret-env", default="MEDREP_PSEUDONYM_SECRET")
    args = parser.parse_args(argv)
    secret = resolve_secret(None, args.secret_env)
    found = dict(locate_sources(args.root, args.sources, secret))
    for source in args.sources:
        print(f"{source}\t{found.get(source, '(not under this root with this secret)')}")
    return 0 if len(found) == len(set(args.sources)) else 1


if __name__ == "__main__":
    raise SystemExit(main())
