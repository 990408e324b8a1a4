"""Losses against naive loop references (values and gradients), and the W&I diagnostics."""

from __future__ import annotations

import math

import pytest
import torch

from medrep.models.losses import ConVIRTLoss, alignment, convirt_loss, uniformity


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
