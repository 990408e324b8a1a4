"""medrep: contrastive image-report pretraining for chest radiographs (ConVIRT and its family)."""

__version__ = "0.1.0"
