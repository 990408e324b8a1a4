"""IU X-ray / Open-I: the `ecgen-radiology/*.xml` reports, their image ids and MeSH terms.

Each XML file is one study: `AbstractText` elements labelled COMPARISON, INDICATION, FINDINGS
and IMPRESSION, `MeSH/major` (and `automatic`) terms such as `Cardiomegaly/mild` or `normal`,
and `parentImage id="CXR1_1_IM-0001-3001"` for each image. The reports are read straight from
the distributed `NLMCXR_reports.tgz` (or from an extracted folder), never unpacked.

The report text is rendered back into the free-text form hospitals write (upper-case headers
followed by colons, a blank line between sections), so it goes through the same `ReportParser`
as every other report. The collection's release has one study per patient, so the study's id
(`CXR1`) is also its patient id.
"""

from __future__ import annotations

import html
import math
import os
import re
import tarfile
import textwrap
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from medrep.data.adapters.base import ImageRecord, ReportRecord
from medrep.data.adapters.common import ProblemLogMixin, is_under
from medrep.data.labels import LABEL_COLUMNS
from medrep.data.reports import ReportParser, normalize_unicode

IU_SECTIONS: tuple[str, ...] = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")

# MeSH heading (lower case, before the first "/") -> the project's finding. Pneumonia counts as
# consolidation (the project has no pneumonia label and Open-I indexes airspace pneumonia as
# it); pulmonary congestion counts as edema, as the CheXpert labeler counts vascular congestion.
DEFAULT_MESH_FINDINGS: dict[str, str] = {
    "cardiomegaly": "Cardiomegaly",
    "pleural effusion": "Pleural Effusion",
    "pneumothorax": "Pneumothorax",
    "consolidation": "Consolidation",
    "pneumonia": "Consolidation",
    "nodule": "Nodule",
    "edema": "Edema",
    "pulmonary edema": "Edema",
    "pulmonary congestion": "Edema",
    "normal": "No Finding",
}
# Findings in the order of the project's label columns.
DEFAULT_LABEL_COLUMNS: tuple[str, ...] = LABEL_COLUMNS
# MeSH qualifiers that make a finding uncertain (-1, CheXpert's convention).
DEFAULT_UNCERTAIN_QUALIFIERS: tuple[str, ...] = ("borderline",)
_HTML_BREAK = re.compile(r"<br\s*/?>", re.IGNORECASE)
# a report indexed only with these terms carries no label information
_UNINDEXED = frozenset({"no indexing"})


@dataclass(frozen=True)
class IUStudy:
    """One parsed XML report.

    Attributes:
        study_key: the report's uId (`CXR1`), which prefixes its image ids.
        sections: XML label (upper case) -> text, for every AbstractText (empty ones as "").
        mesh: MeSH terms as written (`Cardiomegaly/mild`), from the configured tags.
        image_ids: the parentImage ids (`CXR1_1_IM-0001-3001`).
        source: the member's path in the archive or folder (`ecgen-radiology/1.xml`).
    """

    study_key: str
    sections: dict[str, str]
    mesh: tuple[str, ...]
    image_ids: tuple[str, ...]
    source: str


def render_report(
    sections: Mapping[str, str], order: Sequence[str] = IU_SECTIONS, width: int | None = None
) -> str:
    """Free text with upper-case headers from XML sections, a blank line between sections.

    Args:
        sections: XML label -> text; labels outside `order` follow in their own order.
        order: the section order.
        width: wrap lines at this width with a one-space indent, as MIMIC-CXR reports are
            written (None keeps one line per section).
    """
    names = [*order, *(n for n in sections if n not in order)]
    blocks = []
    for name in (n for n in names if n in sections):
        block = f"{name}: {sections[name].strip()}".rstrip()
        if width:
            block = "\n".join(
                textwrap.wrap(
                    block,
                    width=width,
                    initial_indent=" ",
                    subsequent_indent=" ",
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
        blocks.append(block)
    return "\n\n".join(blocks) + "\n"


def parse_iu_xml(data: bytes, source: str, mesh_tags: Sequence[str] = ("major",)) -> IUStudy:
    """One ecgen-radiology XML document.

    Raises:
        ET.ParseError: the document is not well-formed XML.
        ValueError: the document has no `uId` (no key to join its images by).
    """
    root = ET.fromstring(data)
    uid = root.find("uId")
    key = (uid.get("id") or "").strip() if uid is not None else ""
    if not key:
        raise ValueError("no <uId id=...> element")
    sections: dict[str, str] = {}
    for node in root.iter("AbstractText"):
        label = (node.get("Label") or "").strip().upper()
        if label:
            # some reports carry HTML line breaks and doubly escaped entities in their text
            text = _HTML_BREAK.sub(" ", html.unescape("".join(node.itertext())))
            sections[label] = " ".join(text.split())
    mesh_node = root.find("MeSH")
    mesh = tuple(
        (term.text or "").strip()
        for term in (mesh_node if mesh_node is not None else [])
        if term.tag in mesh_tags and (term.text or "").strip()
    )
    images = tuple(
        img.get("id", "").strip() for img in root.iter("parentImage") if img.get("id", "").strip()
    )
    return IUStudy(key, sections, mesh, images, source)


def mesh_labels(
    mesh: Sequence[str],
    mapping: Mapping[str, str] = DEFAULT_MESH_FINDINGS,
    columns: Sequence[str] = DEFAULT_LABEL_COLUMNS,
    uncertain_qualifiers: Sequence[str] = DEFAULT_UNCERTAIN_QUALIFIERS,
) -> dict[str, float]:
    """CheXpert-style labels from a report's MeSH terms.

    A mapped heading makes its finding 1.0 (-1.0 when every mention carries an uncertain
    qualifier such as `borderline`); the other findings of an indexed report are 0.0, because
    Open-I indexes every abnormality it reports. A report without terms, or indexed only as
    "No Indexing", gets NaN everywhere.
    """
    heads = [[part.strip().lower() for part in term.split("/")] for term in mesh]
    if not heads or all(h[0] in _UNINDEXED for h in heads):
        return {c: math.nan for c in columns}
    uncertain = {q.lower() for q in uncertain_qualifiers}
    lower_map = {k.lower(): v for k, v in mapping.items()}
    values = {c: 0.0 for c in columns}
    for parts in heads:
        finding = lower_map.get(parts[0])
        if finding is None or finding not in values:
            continue
        value = -1.0 if uncertain.intersection(parts[1:]) else 1.0
        # a certain mention wins over an uncertain one
        values[finding] = value if values[finding] != 1.0 else 1.0
    return values


@dataclass
class IUXrayAdapter(ProblemLogMixin):
    """IU X-ray / Open-I reports (XML) and, where present, their images.

    Args:
        reports_path: `NLMCXR_reports.tgz`, or a folder that holds the XML files (at any depth).
        image_dir: folder of the images named by their parentImage id (`CXR1_1_IM-0001-3001.png`);
            None when the images are not available (images() then yields nothing).
        image_extensions: file endings tried for each image id, in order.
        mesh_tags: which MeSH elements feed the labels (`major`; add `automatic` for more recall).
        mesh_findings: MeSH heading (lower case) -> label column.
        label_columns: the label columns of `labels()`.
        uncertain_qualifiers: MeSH qualifiers that make a finding uncertain (-1).
        name: the adapter's name in manifests and logs.
    """

    reports_path: str
    image_dir: str | None = None
    image_extensions: Sequence[str] = (".png", ".jpg", ".jpeg", ".dcm")
    mesh_tags: Sequence[str] = ("major",)
    mesh_findings: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_MESH_FINDINGS))
    label_columns: Sequence[str] = DEFAULT_LABEL_COLUMNS
    uncertain_qualifiers: Sequence[str] = DEFAULT_UNCERTAIN_QUALIFIERS
    name: str = "iu_xray"
    # its paths hold only the publisher\'s de-identified ids: kept as they are in `source`
    public_paths: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        self._studies: list[IUStudy] | None = None

    def studies(self) -> list[IUStudy]:
        """Every readable XML report, in file-name order (parsed once, then kept)."""
        if self._studies is None:
            self._start_stage("parse")
            studies: list[IUStudy] = []
            for source, data in self._documents():
                try:
                    studies.append(parse_iu_xml(data, source, self.mesh_tags))
                except (ET.ParseError, ValueError) as err:
                    self._record_problem(
                        "parse", "unreadable_report", source, f"not a usable XML: {err}"
                    )
            self._studies = studies
        return self._studies

    def _documents(self) -> Iterator[tuple[str, bytes]]:
        path = Path(self.reports_path)
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: no such file or folder; point reports_path at NLMCXR_reports.tgz or at "
                "the folder of ecgen-radiology XML files"
            )
        if path.is_dir():
            for file in sorted(path.rglob("*.xml"), key=lambda p: _natural_key(p.name)):
                yield str(file.relative_to(path)), file.read_bytes()
            return
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers() if m.isfile() and m.name.endswith(".xml")]
            for member in sorted(members, key=lambda m: _natural_key(m.name)):
                handle = archive.extractfile(member)
                if handle is None:  # pragma: no cover - isfile() members always extract
                    continue
                yield member.name, handle.read()

    @property
    def export_root(self) -> str | None:
        """The folder every image path must lie under (ingestion checks)."""
        return str(self.image_dir) if self.image_dir else None

    def reports(self) -> Iterator[ReportRecord]:
        """One record per readable XML report (an empty one too: ingestion ledgers it)."""
        for study in self.studies():
            yield ReportRecord(
                study_key=study.study_key,
                text=render_report(study.sections),
                source=study.source,
                patient_id=study.study_key,
            )

    def images(self) -> Iterator[ImageRecord]:
        """Records for the referenced images found under `image_dir` (none without it)."""
        self._start_stage("images")
        if not self.image_dir:
            return
        root = Path(os.path.abspath(self.image_dir))
        for study in self.studies():
            for image_id in study.image_ids:
                candidates = [
                    Path(os.path.abspath(root / f"{image_id}{e}")) for e in self.image_extensions
                ]
                # an id that leads out of the folder is never looked at: ingestion ledgers it
                found = next(
                    (
                        c
                        for c in candidates
                        if not is_under(str(c), str(root)) or os.path.lexists(c)
                    ),
                    None,
                )
                if found is None:
                    self._record_problem(
                        "images",
                        "missing_file",
                        f"{study.source}#{image_id}",
                        f"no {image_id}{{{','.join(self.image_extensions)}}} under the image folder",
                    )
                    continue
                yield ImageRecord(
                    path=str(found),
                    source=found.name,
                    study_key=study.study_key,
                    patient_id=study.study_key,
                    image_id=image_id,
                )

    def labels(self) -> pd.DataFrame:
        """Labels from MeSH terms (see `mesh_labels`), one row per report."""
        rows = [
            mesh_labels(
                study.mesh, self.mesh_findings, self.label_columns, self.uncertain_qualifiers
            )
            for study in self.studies()
        ]
        out = pd.DataFrame({"study_key": [s.study_key for s in self.studies()]})
        for col in self.label_columns:
            out[col] = pd.Series([r[col] for r in rows], dtype="float32")
        return out


def _natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """`ecgen-radiology/2.xml` before `10.xml`: digit runs compare as numbers."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name)
    )


@dataclass(frozen=True)
class SectionAgreement:
    """How well section parsing of rendered reports recovers the XML's own sections.

    Attributes:
        reports: XML reports compared.
        exact: reports whose parsed findings and impression both equal `parser.clean` of the
            XML's FINDINGS and IMPRESSION text (an empty or absent section on both sides agrees).
        words: reports whose parsed findings and impression hold the same sequence of
            alphabetic words as the XML's (placeholders removed): agreement up to punctuation.
        disagreeing: sources of the reports that are not `exact`.
        sentence_counts: sentences per report (chosen sections) -> number of reports.
    """

    reports: int
    exact: int
    words: int
    disagreeing: tuple[str, ...]
    sentence_counts: dict[int, int]


def section_agreement(
    adapter: IUXrayAdapter,
    parser: ReportParser,
    sections: Sequence[str] = ("findings", "impression"),
    width: int | None = None,
) -> SectionAgreement:
    """Parse every report, rendered as free text (wrapped at `width` when given), and compare its
    sections with the XML's (see `SectionAgreement`)."""
    placeholder = re.compile(parser.placeholder_pattern)

    def words(text: str) -> list[str]:
        return re.findall(r"[^\W\d_]+", placeholder.sub(" ", normalize_unicode(text)))

    exact = by_words = 0
    disagreeing: list[str] = []
    counts: Counter[int] = Counter()
    for study in adapter.studies():
        parsed = parser.parse(render_report(study.sections, width=width))
        wanted = {name: study.sections.get(name.upper(), "") for name in sections}
        got = {name: parsed.sections.get(name, "") for name in sections}
        if all(parser.clean(wanted[n]) == got[n] for n in sections):
            exact += 1
        else:
            disagreeing.append(study.source)
        by_words += all(words(wanted[n]) == words(got[n]) for n in sections)
        counts[sum(len(parser.split_sentences(got[n])) for n in sections)] += 1
    return SectionAgreement(
        reports=len(adapter.studies()),
        exact=exact,
        words=by_words,
        disagreeing=tuple(disagreeing),
        sentence_counts=dict(sorted(counts.items())),
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Print the section agreement and sentence counts of an IU X-ray archive (docs/reports.md)."""
    import argparse

    cli = argparse.ArgumentParser(description=main.__doc__)
    cli.add_argument("reports_path", help="NLMCXR_reports.tgz or a folder of XML files")
    cli.add_argument("--wrap", type=int, default=None, help="wrap report lines at this width")
    args = cli.parse_args(argv)
    adapter = IUXrayAdapter(args.reports_path)
    result = section_agreement(adapter, ReportParser(), width=args.wrap)
    n = result.reports
    print(f"XML reports read: {n} (unreadable: {len(adapter.problems)}; wrap: {args.wrap})")
    print(f"exact section agreement: {result.exact}/{n} = {result.exact / n:.2%}")
    print(f"word-sequence agreement: {result.words}/{n} = {result.words / n:.2%}")
    if result.disagreeing:
        print("disagreeing:", " ".join(result.disagreeing[:20]))
    counts = result.sentence_counts
    expanded = sorted(k for k, v in counts.items() for _ in range(v))
    quantiles = {
        q: expanded[min(len(expanded) - 1, int(q * len(expanded)))] for q in (0.1, 0.5, 0.9)
    }
    print(
        f"sentences per report (findings + impression): mean {sum(expanded) / len(expanded):.2f}, "
        f"p10 {quantiles[0.1]}, median {quantiles[0.5]}, p90 {quantiles[0.9]}, max {expanded[-1]}"
    )
    print("| sentences | reports |\n|---:|---:|")
    for k, v in counts.items():
        print(f"| {k} | {v} |")
    labels = adapter.labels()
    print("labels (positive / uncertain / negative / unlabelled):")
    for col in adapter.label_columns:
        values = labels[col]
        print(
            f"  {col}: {int((values == 1).sum())} / {int((values == -1).sum())} / "
            f"{int((values == 0).sum())} / {int(values.isna().sum())}"
        )


if __name__ == "__main__":
    main()
