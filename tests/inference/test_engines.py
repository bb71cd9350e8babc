import builtins

import pytest
import torch

from lapseg.errors import LapsegInputError
from lapseg.inference.engines import make_predictor
from lapseg.models import create_model, fuse_batchnorm


@pytest.mark.parametrize(
    "spec", [{"base_features": 4, "depth": 2}, {"base_features": 4, "depth": 2, "padding": "valid"}]
)
def test_onnx_engine_matches_torch(spec):
    pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    model = fuse_batchnorm(create_model("default", **spec).eval())
    size = 64 if spec.get("padding") != "valid" else int(model.valid_input_size(64))
    tiles = torch.randn(3, 1, size, size)
    with torch.inference_mode():
        expected = make_predictor(model, engine="torch", in_channels=1)(tiles)
        got = make_predictor(model, engine="onnx", in_channels=1)(tiles)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    # other sizes and batch sizes work with the same session (dynamic axes)
    with torch.inference_mode():
        predictor = make_predictor(model, engine="onnx", in_channels=1)
        bigger = torch.randn(1, 1, size + 32, size + 64)
        torch.testing.assert_close(predictor(bigger), model(bigger), atol=1e-4, rtol=1e-4)


def test_onnx_engine_without_onnxruntime_is_a_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_onnxruntime(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnxruntime)
    model = create_model("default", base_features=4, depth=2).eval()
    with pytest.raises(LapsegInputError, match="onnxruntime"):
        make_predictor(model, engine="onnx", in_channels=1)


def test_unknown_engine_rejected():
    model = create_model("default", base_features=4, depth=2).eval()
    with pytest.raises(LapsegInputError, match="torch, onnx"):
        make_predictor(model, engine="tensorrt", in_channels=1)
