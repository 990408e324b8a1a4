"""The embedded synthetic chest X-ray world: DICOM files, reports and labels from one ground truth.

`generate_world` writes a small hospital-like export, deterministically from a `WorldSpec`:

    out_dir/
      dicom/s{study:06d}/i{image:02d}.dcm   real DICOM (CR or DX), names are generator counters
      reports.csv   AccessionNumber, StudyInstanceUID, report        (MIMIC-CXR style free text)
      labels.csv    AccessionNumber, StudyInstanceUID, *LABEL_COLUMNS (CheXpert style, eval only)
      truth.csv     per-study ground truth (sides, lobes, sizes, devices) for debugging
      retrieval_queries.csv, retrieval_candidates.csv
                    category retrieval lists in the CheXpert 8x200 shape (see retrieval_lists)
      world.json    spec, GENERATOR_VERSION, counts, prevalence

The same truth drives the pixels, the report text and the labels. The layers, each seeded on its
own so that changing one does not shift the random streams of the others, and their modules:

    plan_world(spec)                patients, studies, findings, views  plan.py   (spec.py: types)
    write_report(study)             report text + labels                reports.py, sentences.py
    sample_nuisance / render_image  display-space float32 in [0, 1]     nuisance.py, render.py,
                                                                        frontal.py, lateral.py,
                                                                        shapes.py, devices.py,
                                                                        raster.py
    encode_image / build_dataset    stored values + DICOM header        dicom.py
    generate_world                  the files above                     world.py

Conventions: images are in display space (bright = attenuating: bone, heart, fluid); a frontal
image shows the patient's right on the image left. Anatomical coordinates are `u` (image left ->
right) and `v` (top -> bottom), both about [-1, 1] over the chest; the side-relative lateral
coordinate of a lung is `a = |u|`.

The files honour the project's display contract: modality LUT (rescale) -> VOI window -> [0, 1]
-> invert MONOCHROME1 gives the rendered display image back (about 10% of files carry no window
and need a percentile window instead). `difficulty` trades finding conspicuity against nuisance
(pose, habitus, exposure, processing, noise, collimation, markers, tubes, ECG leads, haze) so
that no finding is given away by global brightness and random-init CNN features separate the
findings only weakly, while a trained CNN learns all but the nodules easily.
"""

from medrep.data.labels import FINDINGS, LABEL_COLUMNS
from medrep.data.synthetic.nuisance import ImageNuisance
from medrep.data.synthetic.plan import plan_world
from medrep.data.synthetic.render import render_image, render_study_images
from medrep.data.synthetic.reports import planted_identifiers, report_rng, write_report
from medrep.data.synthetic.spec import GENERATOR_VERSION, Anatomy, Finding, StudyTruth, WorldSpec
from medrep.data.synthetic.world import (
    PLANTED_NAME,
    WorldSummary,
    generate_world,
    read_world,
    retrieval_lists,
)

# the world's public face; the layers' other names are imported from their modules
__all__ = [
    "FINDINGS",
    "GENERATOR_VERSION",
    "LABEL_COLUMNS",
    "PLANTED_NAME",
    "Anatomy",
    "Finding",
    "ImageNuisance",
    "StudyTruth",
    "WorldSpec",
    "WorldSummary",
    "generate_world",
    "plan_world",
    "planted_identifiers",
    "read_world",
    "render_image",
    "render_study_images",
    "report_rng",
    "retrieval_lists",
    "write_report",
]
