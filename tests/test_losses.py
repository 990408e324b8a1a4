"""Losses against naive loop references (values and gradients), and the W&I diagnostics."""

from __future__ import annotations

import math

import pytest
import torch

from medrep.models.losses import (
    CLIPLoss,
    ConVIRTLoss,
    DCLLoss,
    SigLIPLoss,
    alignment,
    convirt_loss,
    uniformity,
)


def naive_convirt(image: torch.Tensor, text: torch.Tensor, tau: float, lam: float) -> torch.Tensor:
    """ConVIRT's equations written out pair by pair."""
    n = image.shape[0]

    def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (a * b).sum() / (a.norm() * b.norm())

    total_i2t = image.new_zeros(())
    total_t2i = image.new_zeros(())
    for i in range(n):
        num = torch.exp(cos(image[i], text[i]) / tau)
        den_i2t = sum(torch.exp(cos(image[i], text[k]) / tau) for k in range(n))
        den_t2i = sum(torch.exp(cos(text[i], image[k]) / tau) for k in range(n))
        total_i2t = total_i2t - torch.log(num / den_i2t)
        total_t2i = total_t2i - torch.log(num / den_t2i)
    return (lam * total_i2t + (1 - lam) * total_t2i) / n


@pytest.mark.parametrize("tau, lam", [(0.1, 0.75), (0.5, 0.5), (0.07, 1.0), (1.0, 0.0)])
def test_convirt_loss_matches_naive_values_and_gradients(tau: float, lam: float) -> None:
    g = torch.Generator().manual_seed(0)
    image = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    text = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)
    out = convirt_loss(image, text, tau, lam)
    ref = naive_convirt(image, text, tau, lam)
    assert torch.allclose(out["loss"], ref, atol=1e-10)
    grads = torch.autograd.grad(out["loss"], (image, text))
    ref_grads = torch.autograd.grad(ref, (image, text))
    for a, b in zip(grads, ref_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


def test_directions_differ_and_lambda_mixes_them() -> None:
    g = torch.Generator().manual_seed(1)
    image, text = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    out = convirt_loss(image, text, 0.1, 0.75)
    assert not torch.isclose(out["loss_i2t"], out["loss_t2i"])
    assert torch.isclose(out["loss"], 0.75 * out["loss_i2t"] + 0.25 * out["loss_t2i"])


def test_perfect_pairs_score_lower_than_shuffled_pairs() -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(16, 8, generator=g)
    aligned = convirt_loss(x, x + 0.01 * torch.randn(16, 8, generator=g))["loss"]
    shuffled = convirt_loss(x, x[torch.randperm(16, generator=g)])["loss"]
    assert aligned < 0.1 < shuffled


def test_uniform_logits_give_log_batch_size() -> None:
    same = torch.ones(5, 3)
    assert math.isclose(convirt_loss(same, same)["loss"].item(), math.log(5), rel_tol=1e-6)


def test_module_validates_hyperparameters() -> None:
    with pytest.raises(ValueError, match="temperature"):
        ConVIRTLoss(temperature=0.0)
    with pytest.raises(ValueError, match="lambda"):
        ConVIRTLoss(lam=1.5)
    with pytest.raises(ValueError, match="shape"):
        convirt_loss(torch.ones(3, 2), torch.ones(4, 2))


def test_alignment_and_uniformity_match_their_definitions() -> None:
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(6, 4, generator=g), torch.randn(6, 4, generator=g)
    xn, yn = x / x.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True)
    assert torch.isclose(alignment(x, y), ((xn - yn).norm(dim=1) ** 2).mean())
    pairs = [torch.exp(-2 * (xn[i] - xn[j]).norm() ** 2) for i in range(6) for j in range(i + 1, 6)]
    assert torch.isclose(uniformity(x), torch.log(torch.stack(pairs).mean()))
    # a collapsed set is maximally non-uniform (log 1 = 0)
    assert torch.isclose(uniformity(torch.ones(5, 4)), torch.tensor(0.0), atol=1e-6)


# --- the rest of the family: each against its equations written out pair by pair -------------


def cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum() / (a.norm() * b.norm())


def naive_directional(
    image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor | float, decoupled: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean image->text and text->image InfoNCE at logit scale `scale` (1 / tau)."""
    n = image.shape[0]
    i2t = image.new_zeros(())
    t2i = image.new_zeros(())
    for i in range(n):
        keep = [k for k in range(n) if not (decoupled and k == i)]
        num = torch.exp(cos(image[i], text[i]) * scale)
        i2t = i2t - torch.log(num / sum(torch.exp(cos(image[i], text[k]) * scale) for k in keep))
        t2i = t2i - torch.log(num / sum(torch.exp(cos(text[i], image[k]) * scale) for k in keep))
    return i2t / n, t2i / n


def naive_siglip(
    image: torch.Tensor, text: torch.Tensor, t: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    n = image.shape[0]
    total = image.new_zeros(())
    for i in range(n):
        for j in range(n):
            z = 1.0 if i == j else -1.0
            total = total - torch.log(
                1.0 / (1.0 + torch.exp(-z * (t * cos(image[i], text[j]) + b)))
            )
    return total / n


def random_pairs(seed: int, n: int = 6, d: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    image = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    text = torch.randn(n, d, generator=g, dtype=torch.float64, requires_grad=True)
    return image, text


def assert_same_values_and_gradients(
    out: torch.Tensor, ref: torch.Tensor, inputs: tuple[torch.Tensor, ...]
) -> None:
    assert torch.allclose(out, ref, atol=1e-10), (out.item(), ref.item())
    grads = torch.autograd.grad(out, inputs)
    ref_grads = torch.autograd.grad(ref, inputs)
    for a, b in zip(grads, ref_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("init_temperature", [0.07, 0.5])
def test_clip_loss_matches_naive_values_and_gradients(init_temperature: float) -> None:
    loss = CLIPLoss(init_temperature=init_temperature).double()
    image, text = random_pairs(4)
    out = loss(image, text)
    scale = loss.scale.log_scale.exp()
    i2t, t2i = naive_directional(image, text, scale, decoupled=False)
    assert math.isclose(out["temperature"].item(), init_temperature, rel_tol=1e-6)
    # the learnable temperature's gradient is checked too
    inputs = (image, text, loss.scale.log_scale)
    assert_same_values_and_gradients(out["loss"], (i2t + t2i) / 2, inputs)


@pytest.mark.parametrize("tau, lam", [(0.1, 0.75), (0.3, 0.5)])
def test_dcl_loss_matches_naive_values_and_gradients(tau: float, lam: float) -> None:
    image, text = random_pairs(5)
    out = DCLLoss(tau, lam)(image, text)
    i2t, t2i = naive_directional(image, text, 1.0 / tau, decoupled=True)
    assert_same_values_and_gradients(out["loss"], lam * i2t + (1 - lam) * t2i, (image, text))


def test_dcl_differs_from_infonce_only_by_the_positive_in_the_denominator() -> None:
    image, text = random_pairs(6)
    coupled = ConVIRTLoss(0.1, 0.75)(image, text)["loss"]
    decoupled = DCLLoss(0.1, 0.75)(image, text)["loss"]
    assert decoupled < coupled  # a smaller denominator, a smaller loss
    with pytest.raises(ValueError, match="at least two pairs"):
        DCLLoss()(image[:1], text[:1])


@pytest.mark.parametrize("scale, bias", [(10.0, -10.0), (2.0, 0.5)])
def test_siglip_loss_matches_naive_values_and_gradients(scale: float, bias: float) -> None:
    loss = SigLIPLoss(init_logit_scale=scale, init_logit_bias=bias).double()
    image, text = random_pairs(7)
    out = loss(image, text)
    t, b = loss.scale.log_scale.exp(), loss.logit_bias
    inputs = (image, text, loss.scale.log_scale, loss.logit_bias)
    assert_same_values_and_gradients(out["loss"], naive_siglip(image, text, t, b), inputs)
    assert torch.isclose(out["loss"], out["loss_pos"] + out["loss_neg"])


def make_loss(name: str) -> torch.nn.Module:
    return {
        "convirt": lambda: ConVIRTLoss(0.1, 0.75),
        "clip": lambda: CLIPLoss(0.07),
        "dcl": lambda: DCLLoss(0.1, 0.75),
        "siglip": lambda: SigLIPLoss(10.0, -10.0),
    }[name]().double()


@pytest.mark.parametrize("name", ["convirt", "clip", "dcl", "siglip"])
def test_local_rows_against_the_global_batch_add_up_to_the_whole_batch(name: str) -> None:
    """What each of W processes computes (its rows, everyone's columns) averages to the full loss.

    The gradient of that average is what DDP's gradient averaging produces, so it must equal the
    gradient of the single-process loss on the concatenated batch.
    """
    loss = make_loss(name)
    image, text = random_pairs(8, n=6)
    full = loss(image, text)["loss"]
    world, rows = 3, 2
    parts = [
        loss(
            image[r * rows : (r + 1) * rows],
            text[r * rows : (r + 1) * rows],
            all_image=image,
            all_text=text,
            offset=r * rows,
        )["loss"]
        for r in range(world)
    ]
    mean = torch.stack(parts).mean()
    params = tuple(p for p in loss.parameters() if p.requires_grad)
    assert_same_values_and_gradients(mean, full, (image, text, *params))


def test_global_batch_arguments_are_checked() -> None:
    image, text = random_pairs(9, n=4)
    loss = ConVIRTLoss()
    with pytest.raises(ValueError, match="both"):
        loss(image, text, all_image=image)
    with pytest.raises(ValueError, match="offset"):
        loss(image, text, all_image=image, all_text=text, offset=1)
    with pytest.raises(ValueError, match="does not match"):
        loss(image, text, all_image=image[:, :3], all_text=text[:, :3])


def test_learnable_temperature_stays_in_its_bounds_and_keeps_learning() -> None:
    loss = CLIPLoss(init_temperature=0.07, min_temperature=0.05)
    image, text = torch.randn(8, 4), torch.randn(8, 4)
    with torch.no_grad():
        loss.scale.log_scale.fill_(math.log(1000.0))  # an optimizer step overshot the bound
    out = loss(image, text)
    assert math.isclose(out["temperature"].item(), 0.05, rel_tol=1e-6)
    assert math.isclose(loss.scale.log_scale.item(), math.log(20.0), rel_tol=1e-6)
    out["loss"].backward()
    # at the bound (not beyond it) the gradient still flows, so tau can come back
    assert loss.scale.log_scale.grad is not None and loss.scale.log_scale.grad != 0
    frozen = CLIPLoss(learnable=False)
    assert not any(p.requires_grad for p in frozen.parameters())
    with pytest.raises(ValueError, match="min_scale"):
        CLIPLoss(init_temperature=2.0)


def test_siglip_starts_at_the_papers_initialisation() -> None:
    g = torch.Generator().manual_seed(10)
    out = SigLIPLoss()(torch.randn(16, 8, generator=g), torch.randn(16, 8, generator=g))
    assert math.isclose(out["logit_scale"].item(), 10.0, rel_tol=1e-6)
    assert out["logit_bias"].item() == -10.0
    # b = -10 offsets the many negatives: at the start they cost little, the positives ~10 each
    assert out["loss_neg"] < 1.0 < 5.0 < out["loss_pos"]
