"""The batched augmentation against its reference, MONAI per image (medrep.data.transforms).

Three checks, each with its tolerance stated:
- the parameters are drawn from the reference's distribution (two-sample Kolmogorov-Smirnov
  and exact rates on 4,000 draws of each; p > 0.001), and a range changed by a fifth is caught;
- given the same parameters, the batched output equals MONAI's deterministic transforms applied
  one image at a time to within interpolation error (one resampling here, two there);
- random outputs of the two paths have the same distribution of image mean and contrast;
plus the deterministic preparation, the blur kernel, the batch routing and, on CUDA, equality
with the CPU and a training step.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from monai.transforms import Affine, Flip, GaussianSmooth, Resize, SpatialCrop
from scipy.stats import ks_2samp

from medrep.data.augment import (
    AUGMENT_KEY,
    PARAM_NAMES,
    PARAMS,
    BatchImages,
    blur,
    blur_tail,
    draw_params,
    prepare_images,
)
from medrep.data.transforms import AugmentConfig, reference_transform
from tests.helpers import IngestedWorld, compose_config

# the paper's ranges (AugmentConfig's defaults) at a small size, blur included
PAPER = AugmentConfig(size=48)
SOURCE = 60  # the cached side: the crop is resized to PAPER.size


def sample_picture(side: int = SOURCE) -> np.ndarray:
    """A uint8 picture with smooth structure and one sharp vertical edge."""
    yy, xx = np.mgrid[0:side, 0:side]
    img = 0.5 + 0.3 * np.sin(xx / 7.0) * np.cos(yy / 5.0) + 0.2 * (xx > side * 0.6)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def reference_draws(cfg: AugmentConfig, n: int, side: int) -> np.ndarray:
    """[n, P] parameters as the MONAI reference draws them (its transforms' own randomize)."""
    compose = reference_transform(cfg, seed=1).compose  # type: ignore[attr-defined]
    crop, _, flip, affine, bright, contrast, smooth, _ = compose.transforms
    out = np.zeros((n, len(PARAM_NAMES)))
    for row in out:
        crop.randomize((side, side))
        flip.randomize(None)
        affine.randomize(None)
        bright.randomize()
        contrast.randomize()
        smooth.randomize(None)
        row[PARAMS["crop_h"]], row[PARAMS["crop_w"]] = crop._size
        row[PARAMS["crop_y"]], row[PARAMS["crop_x"]] = (s.start for s in crop._slices)
        row[PARAMS["flip"]] = float(flip._do_transform)
        row[PARAMS["scale_y"]] = row[PARAMS["scale_x"]] = 1.0
        if affine._do_transform:
            grid = affine.rand_affine_grid
            row[PARAMS["rotate"]] = grid.rotate_params[0]
            row[PARAMS["translate_y"]], row[PARAMS["translate_x"]] = grid.translate_params
            row[PARAMS["scale_y"]], row[PARAMS["scale_x"]] = grid.scale_params
        row[PARAMS["brightness"]] = 1.0 + bright.factor
        row[PARAMS["contrast"]] = 1.0 + contrast.factor
        if smooth._do_transform:
            row[PARAMS["blur_sigma_y"]], row[PARAMS["blur_sigma_x"]] = smooth.x, smooth.y
    return out


def batched_draws(cfg: AugmentConfig, n: int, side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.stack([draw_params(cfg, rng, side, side) for _ in range(n)])


def distribution_mismatches(a: np.ndarray, b: np.ndarray, n: int) -> list[str]:
    """The parameters whose distributions differ between the draws `a` and `b` ([n, P])."""
    bad = []
    for name, i in PARAMS.items():
        if name in ("flip",):
            continue
        if ks_2samp(a[:, i], b[:, i]).pvalue < 1e-3:
            bad.append(name)
    # rates: within 4 binomial standard errors of each other
    rates = {
        "flip": lambda x: x[:, PARAMS["flip"]] > 0.5,
        "affine": lambda x: x[:, PARAMS["scale_y"]] != 1.0,
        "blur": lambda x: x[:, PARAMS["blur_sigma_y"]] > 0,
    }
    for name, chosen in rates.items():
        pa, pb = chosen(a).mean(), chosen(b).mean()
        se = math.sqrt(max(pa * (1 - pa), 1e-4) * 2 / n)
        if abs(pa - pb) > 4 * se:
            bad.append(f"{name} rate")
    return bad


def test_parameters_are_drawn_from_the_reference_distribution() -> None:
    n = 4000
    reference = reference_draws(PAPER, n, SOURCE)
    assert distribution_mismatches(batched_draws(PAPER, n, SOURCE), reference, n) == []
    # the check can fail: a rotation range a fifth wider, a smaller crop and a rarer blur are caught
    for change, name in (
        ({"rotate_degrees": 24.0}, "rotate"),
        ({"crop_area": (0.5, 1.0)}, "crop_h"),
        ({"blur_prob": 0.4}, "blur rate"),
    ):
        wrong = batched_draws(dataclasses.replace(PAPER, **change), n, SOURCE)
        assert name in distribution_mismatches(wrong, reference, n), change


def reference_output(image: np.ndarray, p: np.ndarray, cfg: AugmentConfig) -> torch.Tensor:
    """MONAI's deterministic transforms with the parameters `p`, in the reference's order."""
    x = torch.from_numpy(image[None].astype(np.float32) / 255)
    y0, x0, h, w = (int(p[PARAMS[k]]) for k in ("crop_y", "crop_x", "crop_h", "crop_w"))
    x = SpatialCrop(roi_start=(y0, x0), roi_end=(y0 + h, x0 + w))(x)
    x = Resize((cfg.size, cfg.size), mode="bilinear", anti_aliasing=False)(x)
    if p[PARAMS["flip"]] > 0.5:
        x = Flip(spatial_axis=1)(x)
    x = Affine(
        rotate_params=float(p[PARAMS["rotate"]]),
        translate_params=(float(p[PARAMS["translate_y"]]), float(p[PARAMS["translate_x"]])),
        scale_params=(float(p[PARAMS["scale_y"]]), float(p[PARAMS["scale_x"]])),
        padding_mode="zeros",
        image_only=True,
    )(x)
    x = torch.as_tensor(x).float() * float(p[PARAMS["brightness"]])
    x = (x - x.mean()) * float(p[PARAMS["contrast"]]) + x.mean()
    if p[PARAMS["blur_sigma_y"]] > 0:
        sigma = (float(p[PARAMS["blur_sigma_y"]]), float(p[PARAMS["blur_sigma_x"]]))
        x = torch.as_tensor(GaussianSmooth(sigma=sigma)(x)).float()
    return (x - cfg.mean) / cfg.std


def test_given_the_same_parameters_the_output_is_the_references() -> None:
    image = sample_picture()
    params = batched_draws(PAPER, 64, SOURCE, seed=3)
    assert (params[:, PARAMS["blur_sigma_y"]] > 0).any() and (params[:, PARAMS["flip"]] > 0).any()
    stored = torch.from_numpy(np.repeat(image[None, None], len(params), axis=0))
    out = BatchImages(PAPER).augment(stored, torch.from_numpy(params))
    assert out.shape == (64, 1, PAPER.size, PAPER.size)
    # in [0, 1] intensity units: one resampling (here) against two (the reference) differ by
    # a fraction of a grey level on average, and by up to a tenth at the sharp edge
    errors = np.stack(
        [
            (out[i, 0] - reference_output(image, params[i], PAPER)[0]).abs().numpy() * PAPER.std
            for i in range(len(params))
        ]
    )
    assert errors.mean() < 0.002
    assert errors.mean(axis=(1, 2)).max() < 0.005
    assert errors.max() < 0.15
    # the check can fail: the same images flipped the other way are far from the reference
    flipped = params.copy()
    flipped[:, PARAMS["flip"]] = 1 - flipped[:, PARAMS["flip"]]
    wrong = BatchImages(PAPER).augment(stored, torch.from_numpy(flipped))
    assert (wrong - out).abs().mean() * PAPER.std > 0.01


def test_random_outputs_have_the_reference_distribution() -> None:
    image = sample_picture()
    n = 600
    transform = reference_transform(PAPER, seed=5)
    unit = torch.from_numpy(image[None].astype(np.float32) / 255)
    reference = torch.stack([transform(unit) for _ in range(n)])
    stored = torch.from_numpy(np.repeat(image[None, None], n, axis=0))
    batched = BatchImages(PAPER).augment(stored, torch.from_numpy(batched_draws(PAPER, n, SOURCE)))
    for stat in (lambda x: x.mean(dim=(1, 2, 3)), lambda x: x.std(dim=(1, 2, 3))):
        assert ks_2samp(stat(batched).numpy(), stat(reference).numpy()).pvalue > 1e-3


def test_blur_matches_monai_per_image_sigmas() -> None:
    torch.manual_seed(0)
    images = torch.rand(5, 1, 24, 20)
    sigma_y = torch.tensor([0.0, 0.3, 1.0, 2.7, 0.8])
    sigma_x = torch.tensor([0.0, 2.0, 0.5, 1.1, 3.0])
    out = blur(images, sigma_y, sigma_x, blur_tail(3.0))
    assert torch.equal(out[0], images[0])  # sigma 0: not blurred
    for i in range(1, 5):
        expected = GaussianSmooth(sigma=(float(sigma_y[i]), float(sigma_x[i])))(images[i])
        torch.testing.assert_close(out[i], torch.as_tensor(expected).float(), atol=1e-5, rtol=0)


def test_the_deterministic_preparation_resizes_and_normalises() -> None:
    stored = torch.from_numpy(np.stack([sample_picture(64), 255 - sample_picture(64)])[:, None])
    out = prepare_images(stored, 32, 0.5, 0.25)
    expected = torch.nn.functional.adaptive_avg_pool2d(stored.float() / 255, 32)
    torch.testing.assert_close(out, (expected - 0.5) / 0.25, atol=1e-5, rtol=0)
    same = prepare_images(stored, 64, 0.5, 0.25)
    torch.testing.assert_close(same, (stored.float() / 255 - 0.5) / 0.25)
    wide = torch.from_numpy(sample_picture(64).astype(np.uint16)[None, None] * 257)
    torch.testing.assert_close(prepare_images(wide, 64, 0.0, 1.0), stored[:1].float() / 255)


def test_a_batch_is_augmented_by_its_parameters_or_prepared_without() -> None:
    images = BatchImages(PAPER)
    stored = torch.from_numpy(np.stack([sample_picture(), sample_picture()])[:, None])
    rng = np.random.default_rng(0)
    one = torch.from_numpy(np.stack([images.draw(rng, SOURCE, SOURCE) for _ in range(2)]))
    two = torch.from_numpy(np.stack([one.numpy(), one.numpy()[::-1]], axis=1).copy())
    augmented = images({"image": stored, AUGMENT_KEY: one, "index": torch.arange(2)})
    assert set(augmented) == {"image", "index"} and augmented["image"].shape == (2, 1, 48, 48)
    torch.testing.assert_close(augmented["image"], images.augment(stored, one))
    views = images({"image": stored, AUGMENT_KEY: two})
    assert set(views) == {"view1", "view2"}
    torch.testing.assert_close(views["view2"][0], augmented["image"][1])
    assert not torch.allclose(views["view1"], views["view2"])
    prepared = images({"image": stored})
    torch.testing.assert_close(prepared["image"], prepare_images(stored, 48, 0.5, 0.25))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_the_augmentation_on_cuda_matches_the_cpu() -> None:
    images = BatchImages(AugmentConfig(size=224))
    rng = np.random.default_rng(0)
    params = torch.from_numpy(np.stack([images.draw(rng, 256, 256) for _ in range(64)]))
    stored = torch.randint(0, 256, (64, 1, 256, 256), dtype=torch.uint8)
    cpu = images.augment(stored, params)
    tf32 = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False  # the blur's convolutions in full float32
    try:
        cuda = images.augment(stored.cuda(), params.cuda()).cpu()
    finally:
        torch.backends.cudnn.allow_tf32 = tf32
    torch.testing.assert_close(cuda, cpu, atol=1e-3, rtol=0)


def loader_batches(tiny_world: IngestedWorld, tmp_path: Path) -> dict[str, Any]:
    """One batch of every training data module's train and val loaders, as the loader yields it."""
    from hydra.utils import instantiate

    from medrep.data.image_only import ImageOnlyDataModule

    cfg = compose_config(tmp_path, tiny_world.overrides())
    paired = instantiate(cfg.data.datamodule)
    augment = instantiate(cfg.data.augment)
    two_view = ImageOnlyDataModule(str(tiny_world.ingest_dir), "two_view", augment, batch_size=8)
    manifest = pd.read_parquet(tiny_world.ingest_dir / "manifest.parquet")
    keys = manifest["study_key"].unique()
    labels = pd.DataFrame({"a": np.arange(len(keys)) % 2.0}, index=keys)
    labelled = ImageOnlyDataModule(
        str(tiny_world.ingest_dir), "labelled", augment, batch_size=8, labels=labels
    )
    out = {}
    for name, dm in (("paired", paired), ("two_view", two_view), ("labelled", labelled)):
        dm.setup("fit")
        out[name] = (dm, next(iter(dm.train_dataloader())), next(iter(dm.val_dataloader())))
    return out


def test_loaders_yield_stored_images_and_the_device_hook_makes_inputs(
    tiny_world: IngestedWorld, tmp_path: Path
) -> None:
    batches = loader_batches(tiny_world, tmp_path)
    for name, (dm, train, val) in batches.items():
        size = dm.images.config.size
        assert train["image"].dtype == val["image"].dtype == torch.uint8, name
        views = 2 if name == "two_view" else 1
        assert train[AUGMENT_KEY].shape[1:] == ((views,) if views > 1 else ()) + (len(PARAMS),)
        assert (AUGMENT_KEY in val) == (name == "two_view"), name  # augmented validation views
        inputs = dm.on_after_batch_transfer(train, 0)
        images = [inputs["view1"], inputs["view2"]] if views > 1 else [inputs["image"]]
        for image in images:
            assert image.dtype == torch.float32 and image.shape[1:] == (1, size, size), name
        prepared = dm.on_after_batch_transfer(val, 0)
        if name != "two_view":
            expected = prepare_images(val["image"], size, dm.augment.mean, dm.augment.std)
            torch.testing.assert_close(prepared["image"], expected)
    # validation views are the same at every validation; training ones follow the item seeds
    dm, train, val = batches["two_view"]
    again = next(iter(dm.val_dataloader()))
    torch.testing.assert_close(again[AUGMENT_KEY], val[AUGMENT_KEY])
    dataset = dm.datasets["train"]
    first, second = dataset[(0, 11)][AUGMENT_KEY], dataset[(0, 12)][AUGMENT_KEY]
    assert torch.equal(dataset[(0, 11)][AUGMENT_KEY], first)
    assert not torch.equal(first, second) and not torch.equal(first[0], first[1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_training_step_on_cuda_from_a_loader_batch(
    tiny_world: IngestedWorld, tmp_path: Path
) -> None:
    from pipelines.training import build_module

    dm, batch, _ = loader_batches(tiny_world, tmp_path)["paired"]
    on_cuda = {k: v.cuda() for k, v in batch.items() if isinstance(v, torch.Tensor)}
    inputs = dm.on_after_batch_transfer(on_cuda, 0)
    assert inputs["image"].is_cuda
    on_cpu = dm.on_after_batch_transfer(batch, 0)
    torch.testing.assert_close(inputs["image"].cpu(), on_cpu["image"], atol=1e-3, rtol=0)
    module = build_module(compose_config(tmp_path, tiny_world.overrides())).train().cuda()
    loss = module.loss_terms(module(inputs), text_ids=inputs["text_ids"])["loss"]
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in module.parameters() if p.grad is not None)
