"""The paper configuration (`model=convirt`) and the loss configurations, as Hydra composes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.helpers import compose_config


def test_convirt_config_is_the_papers_recipe(tmp_path: Path) -> None:
    cfg = compose_config(tmp_path, ["model=convirt", "trainer=gpu"], experiment=None)
    m = cfg.model
    image, text = m.module.image_encoder, m.module.text_encoder
    assert (image.depth, image.base_width, image.conv1_stride, image.bias_downsample) == (
        50,
        64,
        2,
        False,
    )
    assert (text.pooling, text.freeze_embeddings, text.n_frozen_layers) == ("max", True, 6)
    assert m.module.embed_dim == 512 and cfg.data.batch_size == 32
    assert (m.module.optimizer.lr, m.module.optimizer.weight_decay) == (1e-4, 1e-6)
    assert (m.module.scheduler.factor, m.module.scheduler.patience) == (0.5, 5)
    assert m.module.monitor == cfg.callbacks.early_stopping.monitor == "val/loss"
    assert (cfg.loss.temperature, cfg.loss.lam) == (0.1, 0.75)
    assert cfg.data.text.train_view == "random_sentence" and cfg.data.text.max_length == 128
    a = cfg.data.augment
    assert cfg.data.image_size == a.size == 224
    assert list(a.crop_area) == [0.6, 1.0] and a.flip_prob == 0.5 and a.rotate_degrees == 20.0
    assert a.translate == 0.1 and list(a.scale) == [0.95, 1.05]
    assert list(a.brightness) == list(a.contrast) == [0.6, 1.4] and list(a.blur_sigma) == [0.1, 3.0]
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accumulate_grad_batches == 1
    # the demo keeps its own sizes, and decays its learning rate over the trainer's epochs
    demo = compose_config(tmp_path, [], experiment=None)
    assert demo.model.name == "convirt_cpu" and demo.data.image_size == 96
    assert demo.model.module.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert demo.model.module.scheduler.T_max == demo.trainer.max_epochs == 27
    assert demo.loss.name == "convirt"
    shorter = compose_config(tmp_path, ["trainer.max_epochs=5"], experiment=None)
    assert shorter.model.module.scheduler.T_max == 5


@pytest.mark.slow
def test_convirt_config_builds_resnet50_and_bert_with_512d_heads(tmp_path: Path) -> None:
    from hydra.utils import instantiate

    from medrep.data.augment import BatchImages
    from medrep.pretrained import load_tokenizer
    from pipelines.training import build_module

    cfg = compose_config(tmp_path, ["model=convirt"], experiment=None)
    module = build_module(cfg).eval()
    assert module.image_encoder.out_dim == 2048
    for head in (module.image_head, module.text_head):
        kinds = [type(layer).__name__ for layer in head.net]
        assert kinds == ["Linear", "ReLU", "Linear"] and head.net[-1].out_features == 512
    # embeddings and the 6 lowest layers frozen (the MiniLM default has exactly 6)
    assert not any(p.requires_grad for p in module.text_encoder.model.embeddings.parameters())
    images = BatchImages(instantiate(cfg.data.augment))
    stored = torch.randint(0, 256, (1, 1, 256, 256), dtype=torch.uint8)
    params = torch.from_numpy(images.draw(np.random.default_rng(0), 256, 256))[None]
    image = images.augment(stored, params)[0]
    assert image.shape == (1, 224, 224)
    tokens = load_tokenizer(cfg.model.module.text_encoder.model_path)(
        ["Small left effusion.", "No pneumothorax."], padding=True, return_tensors="pt"
    )
    batch = {"image": image.expand(2, -1, -1, -1), **tokens}
    with torch.no_grad():
        emb = module(batch)
    assert emb.image.shape == emb.text.shape == (2, 512)


def test_text_encoder_depth_is_checked_against_the_configured_model(tmp_path: Path) -> None:
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    cfg = compose_config(
        tmp_path, ["model=convirt", "model.module.text_encoder.n_frozen_layers=8"], experiment=None
    )
    with pytest.raises(InstantiationException, match="cannot freeze 8 layers of a 6-layer"):
        instantiate(cfg.model.module.text_encoder)


@pytest.mark.parametrize(
    "name, learnable", [("convirt", 0), ("clip", 1), ("dcl", 0), ("siglip", 2)]
)
def test_every_loss_config_builds_behind_one_interface(
    tmp_path: Path, name: str, learnable: int
) -> None:
    from hydra.utils import instantiate

    from medrep.models.losses import ContrastiveLoss
    from pipelines.training import without_name

    cfg = compose_config(tmp_path, [f"loss={name}"], experiment=None)
    assert cfg.method == name
    loss = instantiate(without_name(cfg.loss))
    assert isinstance(loss, ContrastiveLoss)
    assert sum(p.numel() for p in loss.parameters() if p.requires_grad) == learnable
    g = torch.Generator().manual_seed(0)
    terms = loss(torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g))
    assert terms["loss"].ndim == 0 and torch.isfinite(terms["loss"])
