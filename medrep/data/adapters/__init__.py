"""Dataset adapters: each real layout (MIMIC-CXR, CheXpert, IU X-ray, a generic folder + CSV)
yields the same records, which `medrep.data.ingest` turns into one paired manifest."""

from medrep.data.adapters.base import DatasetAdapter, ImageRecord, ReportRecord

__all__ = ["DatasetAdapter", "ImageRecord", "ReportRecord"]
