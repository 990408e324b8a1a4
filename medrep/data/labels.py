"""The project's finding vocabulary: label columns in CheXpert's style (1, 0, -1, NaN).

The synthetic world writes these columns and the IU X-ray adapter maps MeSH terms onto them;
evaluation reads whichever of them `eval.label_names` lists.
"""

from __future__ import annotations

FINDINGS: tuple[str, ...] = (
    "Cardiomegaly",
    "Pleural Effusion",
    "Pneumothorax",
    "Consolidation",
    "Nodule",
    "Edema",
)
LABEL_COLUMNS: tuple[str, ...] = FINDINGS + ("No Finding",)
