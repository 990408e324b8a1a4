"""Losses against naive loop references (values and gradients), and the W&I diagnostics."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from medrep.data.datamodule import TextCollator
from medrep.data.reports import normalise_text, text_id
from medrep.models.losses import (
    CLIPLoss,
    ConVIRTDedupLoss,
    ConVIRTLoss,
    ConVIRTSoftLoss,
    DCLLoss,
    SigLIPLoss,
    alignment,
    convirt_loss,
    uniformity,
)
from tests.helpers import LOSS_FAMILY, compose_config


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


@pytest.mark.parametrize("name", list(LOSS_FAMILY))
def test_local_rows_against_the_global_batch_add_up_to_the_whole_batch(name: str) -> None:
    """What each of W processes computes (its rows, everyone's columns) averages to the full loss.

    The gradient of that average is what DDP's gradient averaging produces, so it must equal the
    gradient of the single-process loss on the concatenated batch.
    """
    loss = LOSS_FAMILY[name]().double()
    image, text = random_pairs(8, n=6)
    # sentence ids with duplicates inside one process's rows and across processes
    ids = {"text_ids": torch.tensor([3, 7, 3, 5, 7, 3])} if loss.uses_text_ids else {}
    full = loss(image, text, **ids)["loss"]
    world, rows = 3, 2
    parts = [
        loss(
            image[r * rows : (r + 1) * rows],
            text[r * rows : (r + 1) * rows],
            all_image=image,
            all_text=text,
            offset=r * rows,
            **ids,
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


# --- repeated sentences: duplicate-aware InfoNCE and soft targets ------------------------------


def naive_dedup(
    image: torch.Tensor, text: torch.Tensor, ids: list[int], tau: float, lam: float, mode: str
) -> torch.Tensor:
    """ConVIRT written pair by pair, where pairs k with ids[k] == ids[i] are not row i's negatives.

    mask: they leave row i's denominator. positive: row i's loss is the mean of -log p over its
    positive set {i} + those pairs (p over all columns).
    """
    n = image.shape[0]

    def row_loss(rows: torch.Tensor, columns: torch.Tensor, i: int) -> torch.Tensor:
        dups = [k for k in range(n) if k != i and ids[k] == ids[i]]
        terms = {k: torch.exp(cos(rows[i], columns[k]) / tau) for k in range(n)}
        if mode == "mask":
            den = sum(terms[k] for k in range(n) if k not in dups)
            return -torch.log(terms[i] / den)
        den = sum(terms.values())
        positives = [i, *dups]
        return -sum(torch.log(terms[k] / den) for k in positives) / len(positives)

    i2t = sum(row_loss(image, text, i) for i in range(n)) / n
    t2i = sum(row_loss(text, image, i) for i in range(n)) / n
    return lam * i2t + (1 - lam) * t2i


def naive_soft(
    image: torch.Tensor, text: torch.Tensor, tau: float, lam: float, w: float, tau_t: float
) -> torch.Tensor:
    """Cross-entropy pair by pair against (1 - w) onehot + w softmax_k(cos(y_i, y_k) / tau_t)."""
    n = image.shape[0]
    y = text.detach()
    total_i2t = image.new_zeros(())
    total_t2i = image.new_zeros(())
    for i in range(n):
        sims = [torch.exp(cos(y[i], y[k]) / tau_t) for k in range(n)]
        target = [(1 - w) * (k == i) + w * sims[k] / sum(sims) for k in range(n)]
        den_i2t = sum(torch.exp(cos(image[i], text[m]) / tau) for m in range(n))
        den_t2i = sum(torch.exp(cos(text[i], image[m]) / tau) for m in range(n))
        for k in range(n):
            total_i2t = total_i2t - target[k] * torch.log(
                torch.exp(cos(image[i], text[k]) / tau) / den_i2t
            )
            total_t2i = total_t2i - target[k] * torch.log(
                torch.exp(cos(text[i], image[k]) / tau) / den_t2i
            )
    return (lam * total_i2t + (1 - lam) * total_t2i) / n


# two pairs of one sentence, three of another, and two sentences seen once
DUPLICATED_IDS = [4, 9, 4, 2, 9, 9, 1]


@pytest.mark.parametrize("mode", ["mask", "positive"])
@pytest.mark.parametrize("tau, lam", [(0.1, 0.75), (0.5, 0.3)])
def test_dedup_loss_matches_naive_values_and_gradients(mode: str, tau: float, lam: float) -> None:
    image, text = random_pairs(11, n=len(DUPLICATED_IDS))
    out = ConVIRTDedupLoss(tau, lam, mode)(image, text, text_ids=torch.tensor(DUPLICATED_IDS))
    ref = naive_dedup(image, text, DUPLICATED_IDS, tau, lam, mode)
    assert_same_values_and_gradients(out["loss"], ref, (image, text))
    assert math.isclose(out["duplicate_rows"].item(), 5 / 7)


@pytest.mark.parametrize("w, tau_t", [(0.3, 0.05), (1.0, 0.5), (0.5, 1.0)])
def test_soft_loss_matches_naive_values_and_gradients(w: float, tau_t: float) -> None:
    image, text = random_pairs(12)
    out = ConVIRTSoftLoss(0.1, 0.75, soft_weight=w, text_temperature=tau_t)(image, text)
    # the naive targets are built from detached texts: the gradients agree only if ours are too
    assert_same_values_and_gradients(
        out["loss"], naive_soft(image, text, 0.1, 0.75, w, tau_t), (image, text)
    )
    assert 0.0 < out["soft_off_target"].item() <= w


def test_degenerate_settings_are_convirt_exactly() -> None:
    """No duplicate in the batch: both dedup modes are ConVIRT, bit for bit; soft_weight = 0 too."""
    image, text = random_pairs(13)
    convirt = convirt_loss(image, text, 0.1, 0.75)
    reference = torch.autograd.grad(convirt["loss"], (image, text))
    distinct = torch.tensor([5, -3, 2**62, 0, 7, 1])
    variants = [
        ConVIRTDedupLoss(0.1, 0.75, "mask")(image, text, text_ids=distinct),
        ConVIRTDedupLoss(0.1, 0.75, "positive")(image, text, text_ids=distinct),
        ConVIRTSoftLoss(0.1, 0.75, soft_weight=0.0)(image, text),
    ]
    for out in variants:
        for name in ("loss", "loss_i2t", "loss_t2i"):
            assert torch.equal(out[name], convirt[name]), name
        grads = torch.autograd.grad(out["loss"], (image, text))
        for a, b in zip(grads, reference, strict=True):
            assert torch.equal(a, b)
    assert variants[0]["duplicate_rows"] == 0 and variants[2]["soft_off_target"] == 0


def test_masking_removes_the_floor_that_a_repeated_sentence_puts_under_convirt() -> None:
    """A perfectly aligned batch in which pairs 0 and 1 carry the same sentence.

    ConVIRT counts sentence 1 as a negative of image 0 that scores as high as the positive
    (the two texts embed identically), so rows 0 and 1 cost at least log 2 each however well the
    model does; masking removes that floor.
    """
    g = torch.Generator().manual_seed(14)
    base = torch.randn(5, 16, generator=g, dtype=torch.float64)
    base[1] = base[0]
    image, text = base.clone(), base.clone()
    image[1] = image[1] + 0.3 * torch.randn(16, generator=g, dtype=torch.float64)
    ids = torch.tensor([8, 8, 1, 2, 3])
    plain = convirt_loss(image, text, 0.05, 1.0)["loss"]
    masked = ConVIRTDedupLoss(0.05, 1.0, "mask")(image, text, text_ids=ids)["loss"]
    assert plain > 2 * math.log(2) / 5 > 0.01 > masked


def test_multi_positive_equals_convirt_when_repeated_sentences_embed_identically() -> None:
    """With equal embeddings for equal sentences, ConVIRT already is SupCon's L_out.

    Image->text: the copies' logits are equal, so the mean of -log p over them is -log p of the
    own pair. Text->image: the duplicated rows have equal logits, and their per-row differences
    cancel in the sum. Value and gradients agree; `positive` differs from ConVIRT only where
    equal sentences embed differently (dropout in the text tower).
    """
    g = torch.Generator().manual_seed(17)
    ids = torch.tensor(DUPLICATED_IDS)
    image = torch.randn(len(ids), 5, generator=g, dtype=torch.float64, requires_grad=True)
    sentences = torch.randn(int(ids.max()) + 1, 5, generator=g, dtype=torch.float64)
    sentences.requires_grad_(True)
    plain = convirt_loss(image, sentences[ids], 0.1, 0.75)["loss"]
    # one embedding per sentence, shared by its copies
    positive = ConVIRTDedupLoss(0.1, 0.75, "positive")(image, sentences[ids], text_ids=ids)
    masked = ConVIRTDedupLoss(0.1, 0.75, "mask")(image, sentences[ids], text_ids=ids)
    assert masked["loss"] < plain - 0.1
    assert_same_values_and_gradients(positive["loss"], plain, (image, sentences))


def test_soft_targets_share_the_mass_of_identical_sentences() -> None:
    g = torch.Generator().manual_seed(15)
    text = torch.randn(4, 8, generator=g, dtype=torch.float64)
    text[1] = text[0]
    image = torch.randn(4, 8, generator=g, dtype=torch.float64)
    w = 0.4
    out = ConVIRTSoftLoss(0.1, 0.75, soft_weight=w, text_temperature=1e-3)(image, text)
    # tau_t -> 0: each of the two copies gets half of the soft mass of rows 0 and 1, the
    # other rows keep theirs on the own pair
    assert math.isclose(out["soft_off_target"].item(), (w / 2 + w / 2) / 4, rel_tol=1e-9)


def test_new_losses_check_their_arguments() -> None:
    image, text = random_pairs(16, n=4)
    with pytest.raises(ValueError, match="text_ids"):
        ConVIRTDedupLoss()(image, text)
    with pytest.raises(ValueError, match=r"one id per pair of the global batch, \[4\]"):
        ConVIRTDedupLoss()(image, text, text_ids=torch.arange(3))
    with pytest.raises(ValueError, match="duplicates must be one of"):
        ConVIRTDedupLoss(duplicates="drop")
    with pytest.raises(ValueError, match="soft_weight"):
        ConVIRTSoftLoss(soft_weight=1.5)
    with pytest.raises(ValueError, match="temperature"):
        ConVIRTSoftLoss(text_temperature=0.0)
    assert ConVIRTDedupLoss.uses_text_ids and not ConVIRTSoftLoss.uses_text_ids
    assert not ConVIRTLoss.uses_text_ids


@pytest.mark.parametrize(
    "override, method, cls",
    [
        ("loss=convirt_dedup", "convirt_dedup_mask", ConVIRTDedupLoss),
        ("loss.duplicates=positive", "convirt_dedup_positive", ConVIRTDedupLoss),
        ("loss=convirt_soft", "convirt_soft_w0.3", ConVIRTSoftLoss),
    ],
)
def test_configs_build_and_name_the_method_by_its_option(
    tmp_path: Path, override: str, method: str, cls: type
) -> None:
    from hydra.utils import instantiate

    from pipelines.training import without_name

    overrides = [override] if override.startswith("loss=") else ["loss=convirt_dedup", override]
    cfg = compose_config(tmp_path, overrides)
    assert cfg.method == method
    loss = instantiate(without_name(cfg.loss))
    assert type(loss) is cls and not list(loss.parameters())
    if cls is ConVIRTDedupLoss:
        assert loss.duplicates == method.rsplit("_", 1)[1]


# --- the sentence ids the dedup loss reads ------------------------------------------------------


# blake2b-64 of "no pneumothorax", as a signed integer
NO_PNEUMOTHORAX_ID = -4889545636787558990


def test_text_ids_are_equal_exactly_for_normalised_duplicates() -> None:
    assert normalise_text("  No acute  cardiopulmonary process. ") == (
        "no acute cardiopulmonary process"
    )
    same = ["No pneumothorax.", "no pneumothorax", "NO  PNEUMOTHORAX!", "No pneumothorax ."]
    assert len({text_id(t) for t in same}) == 1
    assert text_id("No pneumothorax.") != text_id("No pleural effusion.")
    # a fixed value: Python's salted str hash would differ between processes and runs
    assert text_id("No pneumothorax.") == text_id("no pneumothorax") == NO_PNEUMOTHORAX_ID
    assert all(-(2**63) <= text_id(t) < 2**63 for t in same)


def test_collate_puts_the_text_ids_in_the_batch() -> None:
    def tokenizer(texts: list[str], **kwargs: object) -> dict[str, torch.Tensor]:
        return {
            "input_ids": torch.ones(len(texts), 3, dtype=torch.long),
            "attention_mask": torch.ones(len(texts), 3, dtype=torch.long),
        }

    texts = ["No pneumothorax.", "Small left effusion.", "no pneumothorax"]
    items = [{"image": torch.zeros(1, 4, 4), "text": t, "index": i} for i, t in enumerate(texts)]
    batch = TextCollator(tokenizer, 8)(items)
    assert batch["text_ids"].dtype == torch.int64
    assert batch["text_ids"].tolist() == [text_id(t) for t in texts]
    assert batch["text_ids"][0] == batch["text_ids"][2] != batch["text_ids"][1]
