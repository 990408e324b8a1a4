"""Category retrieval lists (CheXpert 8x200 shape), precision rows, zero-shot scores, paired rows."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medrep.evaluation.bootstrap import BootstrapSettings
from medrep.evaluation.results import ResultRow, results_frame
from medrep.evaluation.retrieval_lists import read_retrieval_lists
from medrep.evaluation.retrieval_rows import paired_rows_metrics, precision_rows
from medrep.evaluation.runner import RetrievalListsSpec, resolve_lists
from medrep.evaluation.zeroshot import zero_shot_rows, zero_shot_scores

BOOT = BootstrapSettings(n_resamples=200, level=0.95, seed=0)


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_lists(tmp_path: Path) -> tuple[Path, Path]:
    queries = pd.DataFrame(
        {"Variable": ["Edema", "Edema", "Nodule", "Nodule"], "Path": ["q1", "q2", "q3", "gone"]}
    )
    candidates = pd.DataFrame(
        {
            "Path": ["c1", "c2", "c3", "c3", "q2", "c4"],
            "Edema": [1.0, 0.0, -1.0, -1.0, 1.0, np.nan],
            "Nodule": [0.0, 1.0, 1.0, 1.0, 0.0, 0.0],
        }
    )
    q, c = tmp_path / "q.csv", tmp_path / "c.csv"
    queries.to_csv(q, index=False)
    candidates.to_csv(c, index=False)
    return q, c


def test_lists_resolve_to_keys_and_count_what_they_leave_out(tmp_path: Path) -> None:
    q, c = write_lists(tmp_path)
    keys = {p: f"k_{p}" for p in ("q1", "q2", "q3", "c1", "c2", "c3")}  # c4 and gone: other splits
    lists = read_retrieval_lists(q, c, keys)
    assert lists.categories == ("Edema", "Nodule")
    # q2 is also a candidate: it would retrieve itself
    assert list(lists.query_keys) == ["k_q1", "k_q3"]
    assert list(lists.query_categories) == ["Edema", "Nodule"]
    assert list(lists.candidate_keys) == ["k_c1", "k_c2", "k_c3", "k_q2"]
    # uncertain (-1) is not positive
    np.testing.assert_array_equal(
        lists.candidate_positive, [[True, False], [False, True], [False, True], [True, False]]
    )
    assert lists.dropped == {
        "queries_not_evaluated": 1,
        "candidates_not_evaluated": 1,
        "candidates_duplicate": 1,
        "queries_also_candidates": 1,
    }


def test_lists_name_a_missing_column(tmp_path: Path) -> None:
    q, c = write_lists(tmp_path)
    pd.DataFrame({"Path": ["c1"], "Edema": [1.0]}).to_csv(c, index=False)
    with pytest.raises(ValueError, match="Nodule"):
        read_retrieval_lists(q, c, {})
    with pytest.raises(ValueError, match="Category"):
        read_retrieval_lists(q, c, {}, category_column="Category")


def test_lists_a_dataset_requires_are_an_error_when_missing_not_another_protocol(
    tmp_path: Path,
) -> None:
    """A run evaluated where its world's folder is absent must not quietly switch to the test
    split: its P@k would change (0.538 -> 0.505 for one run of docs/recipe.md's sixth session)."""
    q, c = write_lists(tmp_path)
    manifest = pd.DataFrame(
        {"image_key": ["k_q1", "k_c1"], "source": ["q1", "c1"], "split": ["test", "test"]}
    )
    embedded = {"k_q1", "k_c1"}
    empty = tmp_path / "no_lists"
    empty.mkdir()

    def spec(folder: Path | None, required: bool) -> RetrievalListsSpec:
        where = str(folder) if folder else None
        return RetrievalListsSpec(where, q.name, c.name, "Variable", "Path", ["test"], required)

    for missing in (tmp_path / "moved", empty):
        with pytest.raises(FileNotFoundError, match="required.*lists.dir=null"):
            resolve_lists(spec(missing, True), manifest, embedded)
        # a dataset without lists of its own: the test split, as before
        assert resolve_lists(spec(missing, False), manifest, embedded) is None
    assert resolve_lists(spec(None, True), manifest, embedded) is None
    lists = resolve_lists(spec(tmp_path, True), manifest, embedded)
    assert lists is not None and list(lists.query_keys) == ["k_q1"]


def test_synthetic_world_lists_have_the_protocol_shape() -> None:
    from medrep.data.synthetic import (
        LABEL_COLUMNS,
        WorldSpec,
        plan_world,
        report_rng,
        retrieval_lists,
        write_report,
    )

    spec = WorldSpec(n_patients=120, seed=2)
    plan = plan_world(spec)
    reports = [write_report(s, report_rng(spec, s)) for s in plan.studies]
    queries, candidates = retrieval_lists(plan, reports, n_query=5, n_candidate=20)
    by_path = {f"s{s.study_idx:06d}": (s, r) for s, r in zip(plan.studies, reports, strict=True)}
    query_patients = [by_path[p.split("/")[0]][0].patient.index for _, p, _ in queries]
    assert len(set(query_patients)) == len(query_patients)  # distinct patients
    for category, path, accession in queries:
        study, report = by_path[path.split("/")[0]]
        assert report.labels[category] == 1.0 and study.accession == accession
        assert study.views[int(path[-6:-4])] in ("PA", "AP")  # a frontal image
    per_category = pd.Series([q[0] for q in queries]).value_counts()
    assert set(per_category.index) == set(LABEL_COLUMNS) and per_category.max() == 5
    for row in candidates:
        study, report = by_path[row[0].split("/")[0]]
        assert study.patient.index not in query_patients
        assert [float(v) for v in row[2:]] == [report.labels[c] for c in LABEL_COLUMNS]
    assert len({row[0] for row in candidates}) == len(candidates)
    # exclusive positives come first: the first No Finding query is the only kind there is, and
    # cardiomegaly queries are exclusive while enough exist
    cardio = [by_path[p.split("/")[0]][1] for c, p, _ in queries if c == "Cardiomegaly"]
    exclusive = [
        all(r.labels[c] == 0.0 for c in LABEL_COLUMNS if c != "Cardiomegaly") for r in cardio
    ]
    assert exclusive[0]
    assert exclusive == sorted(exclusive, reverse=True)


def test_precision_rows_match_a_loop() -> None:
    rng = np.random.default_rng(0)
    cats = ["A", "B"]
    positive = rng.random((30, 2)) < 0.4
    candidates = rng.normal(size=(30, 4))
    queries = rng.normal(size=(6, 4))
    qcat = np.array(["A", "A", "B", "B", "B", "A"])
    groups = np.array(["p1", "p1", "p2", "p3", "p4", "p5"])
    rows = precision_rows(
        partial(ResultRow, "r", "m", "image_to_image"),
        queries,
        qcat,
        groups,
        candidates,
        positive,
        cats,
        [5, 10, 50],
        BOOT,
    )
    got = {r.metric: r for r in rows}
    assert "P@50" not in got  # more than the candidates
    assert got["n_queries"].value == 6 and got["n_candidates"].value == 30
    sim = unit(queries) @ unit(candidates).T
    for k in (5, 10):
        per_query = []
        for i in range(6):
            top = np.argsort(-sim[i], kind="stable")[:k]
            per_query.append(np.mean([positive[j, cats.index(qcat[i])] for j in top]))
        assert got[f"P@{k}"].value == pytest.approx(np.mean(per_query))
        sel = qcat == "B"
        assert got[f"P@{k}/B"].value == pytest.approx(np.mean(np.array(per_query)[sel]))
        assert got[f"P@{k}"].ci_low <= got[f"P@{k}"].value <= got[f"P@{k}"].ci_high
        chance = np.mean([positive[:, cats.index(c)].mean() for c in qcat])
        assert got[f"P@{k}_chance"].value == pytest.approx(chance)


def test_zero_shot_scores_match_a_loop() -> None:
    rng = np.random.default_rng(1)
    images = rng.normal(size=(8, 5))
    prompts = rng.normal(size=(5, 5))
    cats = ["A", "A", "A", "B", "B"]
    pols = ["positive", "positive", "negative", "positive", "negative"]
    scores = zero_shot_scores(images, prompts, cats, pols, ["A", "B"])
    p = unit(prompts)
    for j, (pos, neg) in enumerate((([0, 1], [2]), ([3], [4]))):
        cp = p[pos].mean(0) / np.linalg.norm(p[pos].mean(0))
        cn = p[neg].mean(0) / np.linalg.norm(p[neg].mean(0))
        expected = unit(images) @ cp - unit(images) @ cn
        np.testing.assert_allclose(scores[:, j], expected, atol=1e-12)
    with pytest.raises(ValueError, match="negative prompt"):
        zero_shot_scores(images, prompts[:2], ["A", "A"], ["positive", "positive"], ["A"])


def test_zero_shot_rows_score_a_visible_finding() -> None:
    rng = np.random.default_rng(2)
    n = 60
    y = (rng.random(n) < 0.5).astype(float)
    direction = np.eye(4)
    images = (
        rng.normal(size=(n, 4)) * 0.3 + np.outer(y, direction[0]) + np.outer(1 - y, direction[1])
    )
    test = {
        "image_embeddings": images,
        "study_key": np.array([f"s{i}" for i in range(n)]),
        "patient_key": np.array([f"p{i // 2}" for i in range(n)]),
    }
    labels = pd.DataFrame({"study_key": test["study_key"], "Edema": y})
    prompts = {
        "text_embeddings": direction[:2],
        "category": np.array(["Edema", "Edema"]),
        "polarity": np.array(["positive", "negative"]),
    }
    rows = {
        r.metric: r
        for r in zero_shot_rows("r", "m", test, prompts, labels, ["Edema"], "ignore", BOOT).rows
    }
    expected = roc_auc_score(
        y,
        zero_shot_scores(images, direction[:2], ["Edema"] * 2, ["positive", "negative"], ["Edema"])[
            :, 0
        ],
    )
    assert rows["auroc/Edema"].value == pytest.approx(expected) and expected > 0.95
    assert rows["macro_auroc"].ci_low <= rows["macro_auroc"].value <= rows["macro_auroc"].ci_high


def test_paired_rows_recall_and_dedupe_against_brute_force() -> None:
    rng = np.random.default_rng(3)
    n = 12
    text = rng.normal(size=(n, 6))
    texts = ["normal"] * 4 + [f"finding {i}" for i in range(n - 4)]
    text[:4] = text[0]  # identical reports have identical embeddings
    image = text + 0.8 * rng.normal(size=(n, 6))
    test = {
        "image_embeddings": image,
        "text_embeddings": text,
        "study_key": np.array([f"s{i}" for i in range(n)]),
        "patient_key": np.array([f"p{i}" for i in range(n)]),
    }
    rows = paired_rows_metrics(
        "r", "m", test, [1, 5], dict(zip(test["study_key"], texts, strict=True)), BOOT
    )
    frame = results_frame(rows).set_index(["task", "metric"])["value"]
    sim = unit(image) @ unit(text).T
    ranks = np.array([int((sim[i] >= sim[i, i]).sum()) for i in range(n)])
    assert frame["paired_retrieval", "i2t_R@1"] == pytest.approx(np.mean(ranks <= 1))
    assert frame["paired_retrieval", "i2t_median_rank"] == pytest.approx(np.median(ranks))
    # dedupe: any "normal" text is a hit for a normal study; the four copies count once
    group = np.array([0] * 4 + list(range(1, n - 3)))
    dedup = []
    for i in range(n):
        best = sim[i, group == group[i]].max()
        dedup.append(
            1 + len({group[j] for j in range(n) if group[j] != group[i] and sim[i, j] >= best})
        )
    assert frame["paired_retrieval_dedup", "i2t_median_rank"] == pytest.approx(np.median(dedup))
    assert frame["paired_retrieval_dedup", "i2t_R@1"] >= frame["paired_retrieval", "i2t_R@1"]
    assert frame["paired_retrieval_dedup", "distinct_texts"] == n - 3
