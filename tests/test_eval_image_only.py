"""Image-only baselines: NT-Xent against a loop, the modules learn, fine-tuning learns."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch

from medrep.models.encoders import ImageEncoder
from medrep.models.image_only import SimCLRPretrainer, SupervisedPretrainer, masked_bce
from medrep.models.losses import nt_xent_loss


@pytest.fixture(autouse=True)
def one_thread():  # type: ignore[no-untyped-def]
    """Tiny networks run fastest on one thread (and far slower with two on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def naive_nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float) -> float:
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=-1)
    n = z.shape[0]
    b = n // 2
    total = 0.0
    for i in range(n):
        partner = (i + b) % n
        denominator = sum(math.exp(float(z[i] @ z[k]) / tau) for k in range(n) if k != i)
        total += -math.log(math.exp(float(z[i] @ z[partner]) / tau) / denominator)
    return total / n


def test_nt_xent_matches_a_loop() -> None:
    torch.manual_seed(0)
    z1, z2 = torch.randn(5, 8), torch.randn(5, 8)
    for tau in (0.1, 0.5):
        got = nt_xent_loss(z1, z2, tau)["loss"].item()
        assert got == pytest.approx(naive_nt_xent(z1, z2, tau), rel=1e-5)
    # matching views give a low loss, unrelated ones about log(2B - 1)
    assert nt_xent_loss(z1, z1, 0.1)["loss"] < nt_xent_loss(z1, z2, 0.1)["loss"]
    with pytest.raises(ValueError, match="one shape"):
        nt_xent_loss(z1, z2[:3])


def test_masked_bce_ignores_nan_targets() -> None:
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5]])
    targets = torch.tensor([[1.0, float("nan")], [0.0, 1.0]])
    known = torch.tensor([[0.3, 1.0], [2.0, 0.0], [0.5, 1.0]])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(known[:, 0], known[:, 1])
    assert masked_bce(logits, targets).item() == pytest.approx(expected.item())
    assert masked_bce(logits, torch.full((2, 2), float("nan"))).item() == 0.0


def tiny_encoder() -> ImageEncoder:
    return ImageEncoder(depth=10, base_width=4)


def fit_steps(
    module: torch.nn.Module, batch: dict[str, torch.Tensor], loss_fn, steps: int
) -> list[float]:  # type: ignore[no-untyped-def]
    opt = torch.optim.Adam(module.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        loss = loss_fn(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_simclr_module_learns_to_pair_views() -> None:
    torch.manual_seed(0)
    module = SimCLRPretrainer(
        tiny_encoder(), optimizer=partial(torch.optim.Adam, lr=3e-3), embed_dim=16
    )
    base = torch.rand(8, 1, 16, 16)
    batch = {
        "view1": base + 0.05 * torch.randn_like(base),
        "view2": base + 0.05 * torch.randn_like(base),
    }

    def loss(b: dict[str, torch.Tensor]) -> torch.Tensor:
        return nt_xent_loss(module.embed_images(b["view1"]), module.embed_images(b["view2"]), 0.1)[
            "loss"
        ]

    losses = fit_steps(module, batch, loss, 30)
    assert losses[-1] < 0.5 * losses[0]


def test_supervised_module_learns_a_visible_label() -> None:
    torch.manual_seed(0)
    module = SupervisedPretrainer(
        tiny_encoder(), n_labels=2, optimizer=partial(torch.optim.Adam, lr=3e-3)
    )
    images = torch.rand(8, 1, 16, 16) * 0.2
    labels = (torch.arange(8) % 2).float()
    images[labels == 1, :, 4:10, 4:10] += 0.8  # label 0 is a bright square
    targets = torch.stack([labels, torch.full((8,), float("nan"))], 1)
    losses = fit_steps(module, {}, lambda _: masked_bce(module(images), targets), 25)
    assert losses[-1] < 0.3 * losses[0]


def make_cache(tmp_path: Path, n: int, rng: np.random.Generator) -> tuple[object, np.ndarray]:
    """A cache whose images show label 0 as a bright square (label 1 is invisible)."""
    from medrep.data.cache import ImageCache, create_cache, finalize_cache

    y = (rng.random((n, 2)) < 0.5).astype(float)
    arr = create_cache(tmp_path, n, 16, "uint8")
    for i in range(n):
        img = rng.integers(0, 80, size=(16, 16))
        if y[i, 0]:
            img[4:11, 4:11] += 150
        arr[i] = img
    arr.flush()
    finalize_cache(tmp_path, {"test": True}, "x" * 64)
    return ImageCache(tmp_path), y


@pytest.mark.slow
def test_finetuning_learns_a_visible_finding_from_few_labels(tmp_path: Path) -> None:
    from medrep.data.augment import BatchImages
    from medrep.data.transforms import AugmentConfig
    from medrep.evaluation.bootstrap import BootstrapSettings
    from medrep.evaluation.finetune import FinetuneSettings, SplitImages, finetune_rows
    from medrep.evaluation.probe import ProbeSettings

    rng = np.random.default_rng(0)
    cache, y = make_cache(tmp_path, 160, rng)
    index = np.arange(160)
    patients = np.array([f"p{i // 2}" for i in range(160)])
    splits = {
        name: SplitImages(index[sl], patients[sl], y[sl])
        for name, sl in (
            ("train", slice(0, 100)),
            ("val", slice(100, 130)),
            ("test", slice(130, 160)),
        )
    }
    images = BatchImages(
        AugmentConfig(
            size=16,
            crop_area=(1.0, 1.0),
            flip_prob=0.0,
            affine_prob=0.0,
            brightness=(1.0, 1.0),
            contrast=(1.0, 1.0),
            blur_prob=0.0,
        )
    )
    torch.manual_seed(0)
    out = finetune_rows(
        "r",
        "random_init",
        tiny_encoder,
        cache,  # type: ignore[arg-type]
        splits,
        ["square", "invisible"],
        ProbeSettings(
            fractions=(0.2, 1.0), seeds=(0,), c_grid=(1.0,), min_patients=4, uncertain="ignore"
        ),
        FinetuneSettings(
            enabled=True,
            methods=None,
            seeds=(0,),
            steps=30,
            batch_size=8,
            lr=3e-3,
            weight_decay=1e-6,
            eval_every=10,
        ),
        images,
        BootstrapSettings(n_resamples=1000, level=0.95, seed=0),
    )
    rows = {(r.metric, r.label_fraction): r for r in out.rows}
    assert rows[("auroc/square", 1.0)].value > 0.9
    assert abs(rows[("auroc/invisible", 1.0)].value - 0.5) < 0.3
    assert rows[("train_images", 0.2)].value == 20
    assert rows[("macro_auroc", 1.0)].ci_low <= rows[("macro_auroc", 1.0)].value
    assert {r.task for r in out.rows} == {"finetune"}
