"""Inference engines on one image and one model: eager, BatchNorm-folded, ONNX fp32, ONNX INT8.

Every candidate runs lapseg's sliding window (tile 256, overlap 0.25, Gaussian blend, batch 4)
on the same single-channel image with the same network:

- monai: ``monai.inferers.sliding_window_inference`` with the eager (unfolded) network, the
  baseline of issue 13 (skipped when MONAI is not installed; then ratios are to eager torch);
- eager torch: the unfolded network, channels_last;
- folded torch: BatchNorm folded into the convolutions (``lapseg predict --engine torch``);
- onnx fp32: ONNX Runtime on the folded network (``--engine onnx``);
- onnx int8: the folded network statically quantised by ONNX Runtime (QDQ, per-channel int8
  weights, uint8 activations calibrated on tiles of the image), as ``lapseg export --format
  onnx-int8`` writes it.

Each line gives seconds, megapixels/s, the network's GFLOP/s (FLOPs counted once on the
folded fp32 network) and that as a fraction of the machine's conv peak measured in the same
rounds: the fp32 probe of ``common.py`` (3x3 conv 512->512, 32x32, batch 8) and, for INT8, the
same convolution quantised and run by ONNX Runtime. Times are medians of interleaved rounds in
one process (see ``common.py``). ``--run RUN --data DATA`` uses a trained run instead of the
randomly initialised preset and adds the validation Dice/SEG of the INT8 model against the float
model (the export's accuracy check). Run from the repository root on a quiet machine::

    .venv/bin/python benchmarks/bench_engines.py [--size 2048] [--rounds 3] [--preset default]
    .venv/bin/python benchmarks/bench_engines.py --run runs/cells --data data/cells
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common import PROBE_FLOPS, interleaved_medians, make_peak_probe, print_machine_info
from lapseg.data.normalization import percentile_normalize
from lapseg.data.synthetic import SyntheticConfig, synthetic_image
from lapseg.inference.engines import export_onnx, make_predictor
from lapseg.inference.outputs import probabilities_from_logits
from lapseg.inference.sliding_window import Predictor, predict_sliding_window
from lapseg.inference.tiling import tile_grid
from lapseg.models import fuse_batchnorm

TILE = 256
OVERLAP = 0.25
BATCH = 4
CALIBRATION_TILES = 32


def make_image(size: int) -> torch.Tensor:
    """A synthetic ``(1, size, size)`` fluorescence-like image, percentile-normalised."""
    cells = max(4, size * size // 4000)
    config = SyntheticConfig(shape=(size, size), n_cells=(cells, cells + 1))
    image, _ = synthetic_image(config, rng=0)
    normalised = percentile_normalize(image[None].astype(np.float32))
    return torch.from_numpy(np.ascontiguousarray(normalised, dtype=np.float32))


def preset_networks(preset: str) -> tuple[nn.Module, nn.Module]:
    """(eager, folded) networks of a preset, weights seeded with 0."""
    from lapseg.models.registry import create_model

    with torch.random.fork_rng():
        torch.manual_seed(0)
        eager = create_model(preset).eval()
    return eager.to(memory_format=torch.channels_last), fuse_batchnorm(eager).eval()


def run_networks(run: Path) -> tuple[nn.Module, nn.Module]:
    """(eager, folded) networks of a trained run's ``best.pt``."""
    from lapseg.export.networks import load_export_source
    from lapseg.models.registry import create_model

    source = load_export_source(run)
    eager = create_model(source.config.model)
    eager.load_state_dict(source.checkpoint["model_state"])
    return eager.eval().to(memory_format=torch.channels_last), source.network


def sliding(predictor: Predictor, model: nn.Module, image: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return predict_sliding_window(
            predictor,
            image,
            tile_size=(TILE, TILE),
            overlap=OVERLAP,
            blend="gaussian",
            batch_size=BATCH,
            size_multiple=int(getattr(model, "size_multiple", 1)),
            output_margin=int(getattr(model, "output_margin", 0)),
        )


def onnx_session_predictor(path: Path) -> Predictor:
    """ONNX Runtime on the CPU with torch's thread count (as lapseg's ONNX engine)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def predict(batch: torch.Tensor) -> torch.Tensor:
        (out,) = session.run(None, {name: np.ascontiguousarray(batch.numpy(), dtype=np.float32)})
        return torch.from_numpy(out)

    return predict


def quantised_predictor(folded: nn.Module, image: torch.Tensor, work: Path) -> Predictor:
    """The folded network quantised to INT8, calibrated on tiles of ``image``."""
    from lapseg.config import load_config
    from lapseg.export.quantize import calibration_batches, quantize_onnx_file

    in_channels = image.shape[0]
    float_path = work / "float.onnx"
    size = int(getattr(folded, "size_multiple", 16)) * 4
    float_path.write_bytes(export_onnx(folded, in_channels=in_channels, example_size=size))
    config = load_config(
        None,
        [
            f"predict.tile_size=[{TILE}, {TILE}]",
            f"predict.batch_size={BATCH}",
            "model.out_channels=1",
        ],
    )
    batches = calibration_batches([image.numpy()], folded, config, max_tiles=CALIBRATION_TILES)
    int8_path = work / "int8.onnx"
    quantize_onnx_file(float_path, int8_path, batches)
    return onnx_session_predictor(int8_path)


def int8_probe(work: Path) -> Callable[[], None]:
    """The peak probe's convolution quantised like the U-Net and run by ONNX Runtime."""
    from lapseg.export.quantize import quantize_onnx_file

    conv = nn.Conv2d(512, 512, 3, padding=1, bias=False).eval()
    x = torch.randn(8, 512, 32, 32)
    path, qpath = work / "probe.onnx", work / "probe.int8.onnx"
    path.write_bytes(export_onnx(conv, in_channels=512, example_size=32))
    quantize_onnx_file(path, qpath, [x.numpy()])
    run = onnx_session_predictor(qpath)
    run(x)  # warm-up

    def probe() -> None:
        run(x)

    return probe


def network_gflop_per_tile(model: nn.Module, in_channels: int, tile: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        model(torch.zeros(1, in_channels, tile, tile))
    return counter.get_total_flops() / 1e9


def accuracy_of_int8(run: Path, data: Path, work: Path) -> str:
    """The export's accuracy check of the run's INT8 model (never refused here)."""
    from lapseg.export.quantize import export_onnx_int8

    result = export_onnx_int8(run, work / "run.int8.onnx", data=data, max_drop=0.999)
    return result.comparison.summary()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image height and width")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (3+ for figures)")
    parser.add_argument("--preset", default="default", help="model preset (without --run)")
    parser.add_argument("--run", type=Path, help="a trained run instead of the preset")
    parser.add_argument("--data", type=Path, help="the run's dataset (INT8 accuracy check)")
    args = parser.parse_args()
    started = time.perf_counter()
    print_machine_info()
    eager, folded = run_networks(args.run) if args.run else preset_networks(args.preset)
    in_channels = int(getattr(eager, "config").in_channels)  # noqa: B009 (UNet.config)
    image = make_image(args.size).expand(in_channels, -1, -1).contiguous()
    multiple = int(getattr(folded, "size_multiple", 1))
    n_tiles = len(tile_grid((args.size, args.size), (TILE, TILE), OVERLAP, align=multiple))
    tile = min(TILE, -(-args.size // multiple) * multiple)  # small images: one smaller tile
    gflop = network_gflop_per_tile(folded, image.shape[0], tile)
    print(
        f"# image {tuple(image.shape)}, tile {tile}, overlap {OVERLAP}, gaussian, batch {BATCH}, "
        f"{n_tiles} tiles; model {args.run or args.preset!s} "
        f"({sum(p.numel() for p in eager.parameters()):,} parameters, {gflop:.2f} GFLOP/tile)"
    )
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as folder:
        work = Path(folder)
        predictors: dict[str, tuple[Predictor, nn.Module]] = {
            "eager torch": (make_predictor(eager, engine="torch", in_channels=in_channels), eager),
            "folded torch": (
                make_predictor(folded, engine="torch", in_channels=in_channels),
                folded,
            ),
            "onnx fp32": (make_predictor(folded, engine="onnx", in_channels=in_channels), folded),
            "onnx int8": (quantised_predictor(folded, image, work), folded),
        }
        candidates: dict[str, Callable[[], object]] = {"probe": make_peak_probe()}
        candidates["int8 probe"] = int8_probe(work)
        try:
            from monai.inferers import sliding_window_inference

            def monai() -> torch.Tensor:
                with torch.inference_mode():
                    return sliding_window_inference(
                        image[None],
                        roi_size=(TILE, TILE),
                        sw_batch_size=BATCH,
                        predictor=make_predictor(eager, engine="torch", in_channels=in_channels),
                        overlap=OVERLAP,
                        mode="gaussian",
                    )

            candidates["monai"] = monai
        except ImportError:
            print("# MONAI not installed (pip install 'lapseg[bench]'): ratios are to eager torch")
        for name, (predictor, model) in predictors.items():
            candidates[name] = lambda p=predictor, m=model: sliding(p, m, image)
        outputs = {name: sliding(p, m, image) for name, (p, m) in predictors.items()}
        medians = interleaved_medians(candidates, rounds=max(1, args.rounds))
        accuracy = accuracy_of_int8(args.run, args.data, work) if args.run and args.data else None
    peak = PROBE_FLOPS / medians["probe"] / 1e9
    peak8 = PROBE_FLOPS / medians["int8 probe"] / 1e9
    baseline = "monai" if "monai" in medians else "eager torch"
    megapixels = args.size * args.size / 1e6
    print(f"# medians of {max(1, args.rounds)} interleaved rounds")
    print(f"fp32 conv peak probe {peak:8.1f} GFLOP/s")
    print(f"int8 conv peak probe {peak8:8.1f} GOP/s (ONNX Runtime, QDQ)")
    print(
        "| engine | seconds | megapixels/s | network GFLOP/s | fraction of fp32 peak | "
        f"fraction of int8 peak | vs {baseline} | max probability difference to eager |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    reference = probabilities_from_logits(outputs["eager torch"])
    for name in ("monai", *predictors):
        if name not in medians:
            continue
        seconds = medians[name]
        rate = n_tiles * gflop / seconds
        of8 = f"{rate / peak8:.2f}" if name == "onnx int8" else "-"
        delta = (
            f"{(probabilities_from_logits(outputs[name]) - reference).abs().max().item():.3f}"
            if name in outputs
            else "-"
        )
        print(
            f"| {name} | {seconds:.2f} | {megapixels / seconds:.3f} | {rate:.1f} | "
            f"{rate / peak:.2f} | {of8} | {medians[baseline] / seconds:.2f} | {delta} |"
        )
    if accuracy is not None:
        print(f"INT8 vs float, validation split of {args.data}: {accuracy}")
    print(f"# total benchmark time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
