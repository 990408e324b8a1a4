"""Contrastive losses over paired embeddings: the loss family behind one interface.

Every loss is an `nn.Module` called as `loss(image, text)` on a batch whose i-th image and i-th
text are a pair; it returns named terms, always including `"loss"`. Embeddings need not be
normalised: cosine similarity is computed inside.

Data parallelism. A process holding B of the G pairs of a global batch scores its own pairs (the
rows: `image`, `text`) against the whole global batch (the columns: `all_image`, `all_text`, where
its own pairs start at row `offset`). Every loss is a mean over the rows a process scores, so the
mean over processes of their losses is the loss of one process on the whole batch, and so is the
gradient that data-parallel training averages (see `medrep.models.distributed` and
docs/losses.md). Called without `all_*`, a loss scores its batch against itself.

One concern: every contrastive objective of the project (image-text and NT-Xent for the
image-only baseline) and the alignment/uniformity diagnostics, each tested against a loop.

Repeated sentences. In radiology batches different studies often carry the same sentence ("No
pneumothorax."), whose other images are then false negatives (docs/false_negatives.md). A loss
that handles them sets `uses_text_ids = True` and also takes `text_ids`: one integer per column
of the global batch, equal for texts that are equal after normalisation (`medrep.data.reports.
text_id`, put in every batch by the DataModule's collate function).

The family:
    ConVIRTLoss        lam * InfoNCE(image->text) + (1 - lam) * InfoNCE(text->image), fixed tau.
    CLIPLoss           the symmetric mean of both directions, with a learnable temperature.
    DCLLoss            ConVIRT's form with the positive removed from each denominator (decoupled).
    SigLIPLoss         a binary sigmoid loss on every image-text pair, learnable scale and bias.
    ConVIRTDedupLoss   ConVIRT's form; pairs with the row's own sentence are masked out of the
                       denominators, or counted as further positives.
    ConVIRTSoftLoss    ConVIRT's form against soft targets: the one-hot target mixed with the
                       text-text similarity distribution of the (detached) text embeddings.

Beside the family, `nt_xent_loss` (SimCLR's image-only loss over two views of each image) is a
plain function of embeddings with named terms too.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

Terms = dict[str, torch.Tensor]


def cosine_logits(
    image: torch.Tensor, text: torch.Tensor, temperature: float | torch.Tensor
) -> torch.Tensor:
    """[N, M] cosine similarities divided by the temperature; row i is image i against all texts."""
    return F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T / temperature


def global_batch(
    image: torch.Tensor,
    text: torch.Tensor,
    all_image: torch.Tensor | None = None,
    all_text: torch.Tensor | None = None,
    offset: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Check a (local rows, global columns) pair of batches; return the columns and the targets.

    Returns:
        (all_image [G, D], all_text [G, D], targets [B]): targets[i] = offset + i is the column of
        row i's own pair.
    """
    if image.shape != text.shape or image.ndim != 2:
        raise ValueError(
            f"expected two [B, D] tensors of one shape, got {tuple(image.shape)} and {tuple(text.shape)}"
        )
    if (all_image is None) != (all_text is None):
        raise ValueError("pass both all_image and all_text, or neither")
    if all_image is None or all_text is None:
        all_image, all_text, offset = image, text, 0
    if all_image.shape != all_text.shape or all_image.shape[1:] != image.shape[1:]:
        raise ValueError(
            f"global batch {tuple(all_image.shape)} / {tuple(all_text.shape)} does not match the "
            f"local batch {tuple(image.shape)}"
        )
    if not 0 <= offset <= all_image.shape[0] - image.shape[0]:
        raise ValueError(
            f"offset {offset} puts the {image.shape[0]} local pairs outside the global batch of "
            f"{all_image.shape[0]}"
        )
    targets = torch.arange(image.shape[0], device=image.device) + offset
    return all_image, all_text, targets


def info_nce(logits: torch.Tensor, targets: torch.Tensor, decoupled: bool = False) -> torch.Tensor:
    """Mean over rows of -log(exp(l[i, t_i]) / sum_k exp(l[i, k])).

    Args:
        logits: [B, G] scores of each row against every column.
        targets: [B] column of each row's positive.
        decoupled: drop the positive from the denominator (DCL): the sum runs over k != t_i.
    """
    if not decoupled:
        return F.cross_entropy(logits, targets)
    positive = logits.gather(1, targets[:, None]).squeeze(1)
    is_positive = F.one_hot(targets, logits.shape[1]).bool()
    negatives = logits.masked_fill(is_positive, float("-inf"))
    return (torch.logsumexp(negatives, dim=1) - positive).mean()


def convirt_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    temperature: float | torch.Tensor = 0.1,
    lam: float = 0.75,
    all_image: torch.Tensor | None = None,
    all_text: torch.Tensor | None = None,
    offset: int = 0,
    decoupled: bool = False,
) -> Terms:
    """ConVIRT's bidirectional InfoNCE: lam * l(image->text) + (1 - lam) * l(text->image).

    Args:
        image: [B, D] image embeddings (the rows this process scores).
        text: [B, D] text embeddings, text[i] paired with image[i].
        temperature: tau (0.1 in the paper).
        lam: weight of the image-to-text direction (0.75 in the paper).
        all_image / all_text / offset: the global batch and where these rows start in it.
        decoupled: remove the positive from the denominators (DCL).
    """
    all_image, all_text, targets = global_batch(image, text, all_image, all_text, offset)
    loss_i2t = info_nce(cosine_logits(image, all_text, temperature), targets, decoupled)
    loss_t2i = info_nce(cosine_logits(text, all_image, temperature), targets, decoupled)
    return {
        "loss": lam * loss_i2t + (1.0 - lam) * loss_t2i,
        "loss_i2t": loss_i2t,
        "loss_t2i": loss_t2i,
    }


DUPLICATE_MODES = ("mask", "positive")


def duplicate_columns(text_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, G] True where column j holds row i's own sentence in another pair (j != targets[i]).

    Args:
        text_ids: [G] sentence id of every column of the global batch.
        targets: [B] column of each row's own pair.
    """
    same = text_ids[targets][:, None] == text_ids[None, :]
    return same & ~F.one_hot(targets, text_ids.shape[0]).bool()


def dedup_info_nce(
    logits: torch.Tensor, targets: torch.Tensor, duplicates: torch.Tensor, mode: str
) -> torch.Tensor:
    """InfoNCE in which the columns sharing a row's sentence are not negatives.

    Args:
        logits: [B, G] scores of each row against every column.
        targets: [B] column of each row's own pair.
        duplicates: [B, G] `duplicate_columns`.
        mode: `mask`: -log(exp(l[i, t_i]) / sum_{k not a duplicate} exp(l[i, k])).
            `positive`: the mean of -log p[i, k] over the positive set P_i = {t_i} + duplicates,
            p = softmax over all columns (SupCon's L_out: cross-entropy against the uniform
            distribution over P_i). Its minimum is log |P_i|, not 0.

    Either way a row without duplicates is InfoNCE's row bit for bit.
    """
    if mode == "mask":
        return F.cross_entropy(logits.masked_fill(duplicates, float("-inf")), targets)
    if mode == "positive":
        # -mean_{k in P_i} log p[i, k] = InfoNCE + sum_{k duplicate} (l[i, t_i] - l[i, k]) / |P_i|;
        # the second term (and its gradient) is exactly 0 on rows without duplicates
        dup = duplicates.to(logits.dtype)
        own = logits.gather(1, targets[:, None])
        gap = ((own - logits) * dup).sum(1) / (1.0 + dup.sum(1))
        return F.cross_entropy(logits, targets) + gap.mean()
    raise ValueError(f"duplicates must be one of {DUPLICATE_MODES}, got {mode!r}")


def convirt_dedup_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    text_ids: torch.Tensor,
    temperature: float = 0.1,
    lam: float = 0.75,
    duplicates: str = "mask",
    all_image: torch.Tensor | None = None,
    all_text: torch.Tensor | None = None,
    offset: int = 0,
) -> Terms:
    """ConVIRT's bidirectional InfoNCE with repeated sentences not counted as negatives.

    Pairs j and i are duplicates when text_ids[j] == text_ids[i]: in the image->text direction
    text j then describes image i too, and in the text->image direction image j is described by
    text i, so one [B, G] relation serves both. Without duplicates this is `convirt_loss`.

    Args:
        text_ids: [G] sentence id of every pair of the global batch (the rows' are
            text_ids[offset + i]).
        duplicates: `mask` or `positive`, see `dedup_info_nce`.
        Others: as `convirt_loss`.

    Returns:
        loss, loss_i2t, loss_t2i and `duplicate_rows`: the share of rows with a duplicate.
    """
    all_image, all_text, targets = global_batch(image, text, all_image, all_text, offset)
    if text_ids.shape != all_text.shape[:1]:
        raise ValueError(
            f"text_ids has shape {tuple(text_ids.shape)}; expected one id per pair of the global "
            f"batch, [{all_text.shape[0]}]"
        )
    dup = duplicate_columns(text_ids.to(image.device), targets)
    loss_i2t = dedup_info_nce(cosine_logits(image, all_text, temperature), targets, dup, duplicates)
    loss_t2i = dedup_info_nce(cosine_logits(text, all_image, temperature), targets, dup, duplicates)
    return {
        "loss": lam * loss_i2t + (1.0 - lam) * loss_t2i,
        "loss_i2t": loss_i2t,
        "loss_t2i": loss_t2i,
        "duplicate_rows": dup.any(1).to(image.dtype).mean(),
    }


def convirt_soft_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    temperature: float = 0.1,
    lam: float = 0.75,
    soft_weight: float = 0.3,
    text_temperature: float = 0.02,
    all_image: torch.Tensor | None = None,
    all_text: torch.Tensor | None = None,
    offset: int = 0,
) -> Terms:
    """ConVIRT's bidirectional cross-entropy against targets softened by text-text similarity.

    Row i's target over the G columns is (1 - w) * onehot(t_i) + w * softmax_j(cos(y_i, y_j) /
    tau_t), with y the text embeddings detached (no gradient flows through the targets). The same
    target serves both directions: in image->text the columns are texts like row i's text, in
    text->image the images whose texts are like it. soft_weight = 0 is `convirt_loss`.

    Args:
        soft_weight: w, the target mass given to the similarity distribution.
        text_temperature: tau_t of that distribution.
        Others: as `convirt_loss`.

    Returns:
        loss, loss_i2t, loss_t2i (cross-entropies, so their minimum is the targets' entropy, not
        0) and `soft_off_target`: the mean target mass on columns other than the own pair.
    """
    all_image, all_text, targets = global_batch(image, text, all_image, all_text, offset)
    similar = cosine_logits(text.detach(), all_text.detach(), text_temperature).softmax(1)

    def cross_entropy(logits: torch.Tensor) -> torch.Tensor:
        # linear in the target: the hard and the soft part apart, so that w = 0 is InfoNCE bit
        # for bit
        hard = F.cross_entropy(logits, targets)
        return (1.0 - soft_weight) * hard + soft_weight * F.cross_entropy(logits, similar)

    loss_i2t = cross_entropy(cosine_logits(image, all_text, temperature))
    loss_t2i = cross_entropy(cosine_logits(text, all_image, temperature))
    off_target = soft_weight * (1.0 - similar.gather(1, targets[:, None]))
    return {
        "loss": lam * loss_i2t + (1.0 - lam) * loss_t2i,
        "loss_i2t": loss_i2t,
        "loss_t2i": loss_t2i,
        "soft_off_target": off_target.mean(),
    }


def siglip_loss(
    image: torch.Tensor,
    text: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
    all_image: torch.Tensor | None = None,
    all_text: torch.Tensor | None = None,
    offset: int = 0,
) -> Terms:
    """SigLIP: -(1/B) sum_i sum_j log sigmoid(z_ij * (t * cos(x_i, y_j) + b)), z = +1 on pairs.

    Rows are this process's images, columns the global batch's texts, so every image-text pair of
    the global batch is scored exactly once across processes.
    """
    all_image, all_text, targets = global_batch(image, text, all_image, all_text, offset)
    logits = cosine_logits(image, all_text, 1.0) * logit_scale + logit_bias
    is_positive = F.one_hot(targets, logits.shape[1]).bool()
    signs = torch.where(is_positive, 1.0, -1.0).to(logits.dtype)
    per_pair = -F.logsigmoid(signs * logits)
    rows = image.shape[0]
    loss_pos = per_pair.masked_fill(~is_positive, 0.0).sum() / rows
    loss_neg = per_pair.masked_fill(is_positive, 0.0).sum() / rows
    return {"loss": loss_pos + loss_neg, "loss_pos": loss_pos, "loss_neg": loss_neg}


def nt_xent_loss(view1: torch.Tensor, view2: torch.Tensor, temperature: float = 0.1) -> Terms:
    """SimCLR's NT-Xent (images only): each of the 2B views must pick its partner among 2B - 1.

    Args:
        view1, view2: [B, D] embeddings; row i of both comes from the same image.
        temperature: tau of the cosine-similarity logits.

    Returns:
        {"loss": the mean over all 2B anchors}.
    """
    if view1.shape != view2.shape or view1.ndim != 2:
        raise ValueError(
            f"expected two [B, D] tensors of one shape, got {tuple(view1.shape)} and "
            f"{tuple(view2.shape)}"
        )
    b = view1.shape[0]
    z = torch.cat([view1, view2])
    logits = cosine_logits(z, z, temperature)
    # an anchor is never its own negative
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), -torch.inf)
    partner = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return {"loss": F.cross_entropy(logits, partner)}


def _check_temperature(temperature: float) -> None:
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")


def _check_lambda(lam: float) -> None:
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lambda must lie in [0, 1], got {lam}")


class ContrastiveLoss(nn.Module):
    """The family's interface: `loss(image, text, all_image=None, all_text=None, offset=0)`.

    Returns a dict of named scalar terms with at least `"loss"` (what is minimised); the other
    terms are diagnostics that the LightningModule logs.

    A loss with `uses_text_ids = True` is also called with `text_ids=` ([G] integer sentence ids
    of the global batch's pairs, gathered across processes like the embeddings); the others are
    never passed it.
    """

    uses_text_ids: bool = False

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        all_image: torch.Tensor | None = None,
        all_text: torch.Tensor | None = None,
        offset: int = 0,
    ) -> Terms:
        raise NotImplementedError


class _ConVIRTForm(ContrastiveLoss):
    """The members of ConVIRT's form: a fixed temperature tau and the image->text weight lambda."""

    def __init__(self, temperature: float, lam: float) -> None:
        super().__init__()
        _check_temperature(temperature)
        _check_lambda(lam)
        self.temperature = temperature
        self.lam = lam


# Each loss class restates ContrastiveLoss.forward's typed signature and calls its pure
# function; the lines `duplicates` pairs between these classes are that interface, not logic.
class ConVIRTLoss(_ConVIRTForm):
    """`convirt_loss` with its hyperparameters (tau = 0.1, lambda = 0.75 in the paper)."""

    def __init__(self, temperature: float = 0.1, lam: float = 0.75) -> None:
        super().__init__(temperature, lam)

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        all_image: torch.Tensor | None = None,
        all_text: torch.Tensor | None = None,
        offset: int = 0,
    ) -> Terms:
        return convirt_loss(image, text, self.temperature, self.lam, all_image, all_text, offset)


class DCLLoss(_ConVIRTForm):
    """Decoupled contrastive loss (Yeh et al.): ConVIRT's form, positive left out of each denominator.

    Args:
        temperature: tau.
        lam: weight of the image-to-text direction (0.5 is the symmetric loss of the paper).
    """

    def __init__(self, temperature: float = 0.1, lam: float = 0.5) -> None:
        super().__init__(temperature, lam)

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        all_image: torch.Tensor | None = None,
        all_text: torch.Tensor | None = None,
        offset: int = 0,
    ) -> Terms:
        columns = (all_image if all_image is not None else image).shape[0]
        if columns < 2:
            raise ValueError(
                "DCL needs at least two pairs in the (global) batch: it has no negatives"
            )
        return convirt_loss(
            image, text, self.temperature, self.lam, all_image, all_text, offset, decoupled=True
        )


class ConVIRTDedupLoss(_ConVIRTForm):
    """`convirt_dedup_loss`: ConVIRT with identical sentences in the batch not used as negatives.

    Args:
        temperature / lam: ConVIRT's tau and lambda.
        duplicates: `mask` (leave them out of the denominators) or `positive` (count them as
            further positives, SupCon's L_out); without duplicates both are ConVIRT's loss.
    """

    uses_text_ids = True

    def __init__(self, temperature: float = 0.1, lam: float = 0.75, duplicates: str = "mask"):
        super().__init__(temperature, lam)
        if duplicates not in DUPLICATE_MODES:
            raise ValueError(f"duplicates must be one of {DUPLICATE_MODES}, got {duplicates!r}")
        self.duplicates = duplicates

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        all_image: torch.Tensor | None = None,
        all_text: torch.Tensor | None = None,
        offset: int = 0,
        text_ids: torch.Tensor | None = None,
    ) -> Terms:
        if text_ids is None:
            raise ValueError(
                "ConVIRTDedupLoss needs the batch's text_ids (one sentence id per pair); "
                "PairedDataModule's TextCollator puts them in every batch as `text_ids`"
            )
        return convirt_dedup_loss(
            image,
            text,
            text_ids,
            self.temperature,
            self.lam,
            self.duplicates,
            all_image,
            all_text,
            offset,
        )


class ConVIRTSoftLoss(_ConVIRTForm):
    """`convirt_soft_loss`: ConVIRT against targets softened by text-text similarity.

    Args:
        temperature / lam: ConVIRT's tau and lambda.
        soft_weight: target mass on the similarity distribution (0: ConVIRT's loss exactly).
        text_temperature: temperature of the text-text similarity distribution.
    """

    def __init__(
        self,
        temperature: float = 0.1,
        lam: float = 0.75,
        soft_weight: float = 0.3,
        text_temperature: float = 0.02,
    ) -> None:
        super().__init__(temperature, lam)
        _check_temperature(text_temperature)
        if not 0.0 <= soft_weight <= 1.0:
            raise ValueError(f"soft_weight must lie in [0, 1], got {soft_weight}")
        self.soft_weight = soft_weight
        self.text_temperature = text_temperature

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        all_image: torch.Tensor | None = None,
        all_text: torch.Tensor | None = None,
        offset: int = 0,
    ) -> Terms:
        return convirt_soft_loss(
            image,
            text,
            self.temperature,
            self.lam,
            self.soft_weight,
            self.text_temperature,
            all_image,
            all_text,
            offset,
        )


class _LearnableLogitScale(nn.Module):
    """A logit scale t = exp(s) learnt in log space and kept inside [min_scale, max_scale].

    Like CLIP, the bound is applied to the parameter itself, not only to the value used: a value
    clamped in the forward alone would leave a parameter that an optimizer step pushed past the
    bound without gradient (clamp's gradient is zero outside it), stuck there. The projection
    runs at the start of each training forward, through `.data` so that it bumps no autograd
    version counter: the parameter only leaves its bounds through an optimizer step, after which
    no pending graph holds it.
    """

    def __init__(self, init_scale: float, min_scale: float, max_scale: float, learnable: bool):
        super().__init__()
        if not 0 < min_scale <= init_scale <= max_scale:
            raise ValueError(
                f"need 0 < min_scale <= init_scale <= max_scale, got {min_scale}, {init_scale}, {max_scale}"
            )
        self.log_scale = nn.Parameter(torch.tensor(math.log(init_scale)), requires_grad=learnable)
        self.bounds = (math.log(min_scale), math.log(max_scale))

    def forward(self) -> torch.Tensor:
        if self.training:
            self.log_scale.data.clamp_(*self.bounds)
        return self.log_scale.clamp(*self.bounds).exp()


class CLIPLoss(ContrastiveLoss):
    """CLIP's symmetric InfoNCE, (l(image->text) + l(text->image)) / 2, learnable temperature.

    Args:
        init_temperature: starting tau (CLIP: 0.07).
        min_temperature / max_temperature: bounds of tau (CLIP clamps the logit scale to 100,
            i.e. tau >= 0.01).
        learnable: learn tau (False gives the symmetric loss at a fixed tau).
    """

    def __init__(
        self,
        init_temperature: float = 0.07,
        min_temperature: float = 0.01,
        max_temperature: float = 1.0,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        _check_temperature(min_temperature)
        self.scale = _LearnableLogitScale(
            1.0 / init_temperature, 1.0 / max_temperature, 1.0 / min_temperature, learnable
        )

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        all_image: torch.Tensor | None = None,
        all_text: torch.Tensor | None = None,
        offset: int = 0,
    ) -> Terms:
        scale = self.scale()
        terms = convirt_loss(image, text, 1.0 / scale, 0.5, all_image, all_text, offset)
        return {**terms, "temperature": (1.0 / scale).detach()}


class SigLIPLoss(ContrastiveLoss):
    """SigLIP's pairwise sigmoid loss (Zhai et al.) with a learnable logit scale and bias.

    Args:
        init_logit_scale: starting t (the paper: 10, i.e. t' = log 10).
        init_logit_bias: starting b (the paper: -10, which offsets the many negatives at start).
        max_logit_scale: upper bound of t (kept like CLIP's, for stability in small batches).
        learnable: learn t and b.
    """

    def __init__(
        self,
        init_logit_scale: float = 10.0,
        init_logit_bias: float = -10.0,
        max_logit_scale: float = 100.0,
        learnable: bool = True,
    ) -> None:
        super().__init__()
        self.scale = _LearnableLogitScale(init_logit_scale, 1.0, max_logit_scale, learnable)
        self.logit_bias = nn.Parameter(
            torch.tensor(float(init_logit_bias)), requires_grad=learnable
        )

    def forward(
        self,
        image: torch.Tensor,
        text: torch.Tensor,
        all_image: torch.Tensor | None = None,
        all_text: torch.Tensor | None = None,
        offset: int = 0,
    ) -> Terms:
        scale = self.scale()
        terms = siglip_loss(image, text, scale, self.logit_bias, all_image, all_text, offset)
        return {**terms, "logit_scale": scale.detach(), "logit_bias": self.logit_bias.detach()}


def alignment(image: torch.Tensor, text: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Wang & Isola's alignment: mean ||x - y||^alpha over positive pairs (normalised); lower is better."""
    x, y = F.normalize(image, dim=-1), F.normalize(text, dim=-1)
    return (x - y).norm(dim=-1).pow(alpha).mean()


def uniformity(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola's uniformity: log mean exp(-t ||xi - xj||^2) over distinct pairs; lower is better.

    A collapse towards one point drives it to 0 (its maximum).
    """
    x = F.normalize(x, dim=-1)
    if x.shape[0] < 2:
        return x.new_zeros(())
    return torch.pdist(x, p=2).pow(2).mul(-t).exp().mean().log()
