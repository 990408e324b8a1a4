"""Typed ingestion errors: every refusal carries a reason code for the rejects ledger."""

from __future__ import annotations

from pathlib import Path

# Reason codes written to rejects.csv. One code per distinct cause, so that a site can count
# and act on them (for example re-export every `decode_error` file from the PACS).
REASON_CODES: dict[str, str] = {
    "unreadable": "the file could not be opened or parsed as DICOM",
    "not_image": "a non-DICOM file that could not be read as a PNG/JPEG/TIFF image",
    "not_dicom": "the file is not a DICOM dataset (no preamble/meta and no parseable elements)",
    "bad_header": "a header element the pipeline reads holds an invalid value (e.g. Rows as a list)",
    "no_pixel_data": "the dataset has no Pixel Data element",
    "decode_error": "the pixel data could not be decoded with the installed handlers",
    "unsupported_photometric": "photometric interpretation is not MONOCHROME1/MONOCHROME2",
    "multi_frame": "the file holds several frames and no frame was configured",
    "bad_dimensions": "Rows/Columns are missing, smaller than data.min_side or over the limit",
    "bad_bit_depth": "BitsStored over 16 or over BitsAllocated (not a radiograph as stored)",
    "missing_key": "the element used to join images to reports is absent",
    "missing_report": "no report was found for the image's study",
    "empty_report": "the report has no usable sentences in the configured sections",
    "duplicate_image": "an image with the same SOP Instance UID was already ingested",
    "duplicate_report": "a second report row for a study that already has one",
    "unreadable_report": "a report file could not be read or parsed (XML error, bad encoding)",
    "report_too_large": "the report is longer than data.max_report_chars (not a single report?)",
    "bad_encoding": "the report held undecodable bytes, replaced by U+FFFD (kept, marked repaired)",
    "report_without_images": "a report whose study has no cached image (unmatched, not an error)",
    "missing_file": "a metadata row or report names an image file that is not on disk",
    "filtered_view": "ViewPosition is not among the configured views (not an error)",
    "filtered_modality": "Modality is not among the configured modalities (not an error)",
    "filtered_one_per_study": "another image of the study was kept (one-image-per-study policy)",
    "bad_table_row": "a CSV row that cannot be read (fields do not match the header, bad quoting)",
    "unsupported_file": "not a regular DICOM or image file (a text file in the image folder, a "
    "FIFO, a folder listed as an image, a folder that cannot be listed)",
    "outside_export": "the path (or a linked folder) resolves outside the export's root folder; "
    "it was never opened or listed",
    "symlink": "the path (or a folder) goes through a symbolic link, not followed "
    "(data.ingest.follow_symlinks is false)",
    "duplicate_file": "the same file (after resolving the path) was already listed",
    "duplicate_content": "pixel-identical to an image already cached (another key or patient)",
    "truncated_image": "the image data ends early (a cut-off PNG/JPEG/TIFF)",
    "non_finite": "the pixel values hold NaN or infinity",
    "constant_image": "the decoded image is constant or nearly so, even with a percentile window",
    "header_mismatch": "the header disagrees with the pixel data (length, sign) or with its SOP "
    "Class (a CT slice labelled DX)",
}


class IngestError(Exception):
    """A file or record that ingestion refuses, with a reason code from `REASON_CODES`."""

    def __init__(self, reason: str, path: str | Path, message: str) -> None:
        if reason not in REASON_CODES:
            raise ValueError(f"unknown reason code {reason!r}; add it to REASON_CODES")
        self.reason = reason
        self.path = str(path)
        self.message = message
        super().__init__(f"{Path(self.path).name}: {message}; ledgered as {reason}")

    def __reduce__(self) -> tuple[type[IngestError], tuple[str, str, str]]:
        # errors cross process boundaries (decoding pools): rebuild from the three fields
        return (IngestError, (self.reason, self.path, self.message))
