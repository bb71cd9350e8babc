from __future__ import annotations

import pytest
import torch
from torch import nn

from lapseg.config import PredictConfig, UNetConfig
from lapseg.inference.engines import predict_logits
from lapseg.inference.tta import (
    DIHEDRAL,
    DihedralTTA,
    dihedral_transform,
    dihedral_tta,
    inverse_dihedral_transform,
)
from lapseg.models.registry import create_model


def _batch(shape: tuple[int, ...] = (2, 3, 6, 10)) -> torch.Tensor:
    return torch.arange(int(torch.tensor(shape).prod()), dtype=torch.float32).reshape(shape)


def test_dihedral_group_has_eight_distinct_images_and_inverses():
    x = _batch((1, 1, 4, 4))
    images = {tuple(dihedral_transform(x, k, f).flatten().tolist()) for k, f in DIHEDRAL}
    assert len(images) == 8
    y = _batch()  # non-square
    for k, f in DIHEDRAL:
        t = dihedral_transform(y, k, f)
        assert t.shape[-2:] == ((6, 10) if k % 2 == 0 else (10, 6))
        assert torch.equal(inverse_dihedral_transform(t, k, f), y)
    # hand-checked element: one quarter turn counter-clockwise
    m = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    assert dihedral_transform(m, 1, False)[0, 0].tolist() == [[2.0, 4.0], [1.0, 3.0]]
    assert dihedral_transform(m, 0, True)[0, 0].tolist() == [[2.0, 1.0], [4.0, 3.0]]


def test_equivariant_model_tta_equals_plain_output():
    # a 3x3 isotropic (dihedral-symmetric) filter is equivariant to flips and rotations
    conv = nn.Conv2d(2, 3, 3, padding=1, bias=True)
    with torch.no_grad():
        stencil = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]])
        conv.weight.copy_(torch.randn(3, 2, 1, 1, generator=torch.Generator().manual_seed(0)))
        conv.weight.mul_(stencil)
    model = nn.Sequential(conv, nn.ReLU())
    x = torch.rand(2, 2, 8, 12, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = model(x)
        tta = dihedral_tta(model)(x)
    torch.testing.assert_close(tta, plain, rtol=1e-5, atol=1e-5)


def test_non_equivariant_model_tta_is_mean_of_the_eight_outputs():
    # a 'valid' convolution with an asymmetric kernel: output smaller than input, non-square
    torch.manual_seed(0)
    conv = nn.Conv2d(1, 2, 3)  # output margin 1
    x = torch.rand(1, 1, 9, 13, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = torch.zeros(1, 2, 7, 11)
        for k, flip in DIHEDRAL:
            xt = x
            if flip:
                xt = xt.flip(-1)
            out = conv(torch.rot90(xt, k, dims=(2, 3)))
            out = torch.rot90(out, -k, dims=(2, 3))
            expected += out.flip(-1) if flip else out
        expected /= 8
        tta = dihedral_tta(conv)(x)
        plain = conv(x)
    torch.testing.assert_close(tta, expected)
    assert not torch.allclose(tta, plain)  # the model really is not equivariant


def test_module_wrapper_works_inside_sliding_window_prediction():
    model = create_model(UNetConfig(base_features=4, depth=2)).eval()
    wrapped = DihedralTTA(model)
    assert wrapped.size_multiple == model.size_multiple
    assert wrapped.output_margin == model.output_margin
    image = torch.rand(1, 32, 16, generator=torch.Generator().manual_seed(3))
    settings = PredictConfig(tile_size=(32, 16), overlap=0.25)  # one tile: no seams
    with torch.inference_mode():
        logits = predict_logits(wrapped, image, settings)
        mirrored = predict_logits(wrapped, image.flip(-1), settings)
    assert logits.shape[-2:] == image.shape[-2:]
    # averaged over the whole group, the prediction of a mirrored image is the mirrored one
    torch.testing.assert_close(logits.flip(-1), mirrored, rtol=1e-4, atol=1e-4)


def test_bad_inputs():
    with pytest.raises(ValueError, match="empty"):
        dihedral_tta(nn.Identity(), transforms=[])
    with pytest.raises(ValueError, match="duplicates"):
        dihedral_tta(nn.Identity(), transforms=[(0, False), (4, False)])
    with pytest.raises(ValueError, match=r"\(B, C, Y, X\)"):
        dihedral_tta(nn.Identity())(torch.zeros(3, 4, 4))


def test_tta_wraps_a_loaded_models_predictor():
    from lapseg.inference.engines import torch_predictor

    model = create_model(UNetConfig(base_features=4, depth=2)).eval()
    image = torch.rand(1, 32, 16, generator=torch.Generator().manual_seed(4))
    settings = PredictConfig(tile_size=(32, 16))
    with torch.inference_mode():
        via_module = predict_logits(DihedralTTA(model), image, settings)
        via_predictor = predict_logits(
            model, image, settings, predictor=dihedral_tta(torch_predictor(model))
        )
        plain = predict_logits(model, image, settings)
    torch.testing.assert_close(via_predictor, via_module, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(via_predictor, plain)
