"""Accuracy at a fixed training budget: lapseg's defaults against the MONAI recipe, side by side.

    python benchmarks/bench_accuracy.py hela --minutes 12 [--tools lapseg,monai] [--set KEY=VALUE]

Protocols (../shared/data/README.md): ``hela`` (DIC-HeLa seq 01 silver truth -> seq 02 gold
truth), ``psc`` (PhC-C2DL-PSC seq 02 silver truth t150-174, t190-250 -> gold truth t182),
``usiigaci`` (train -> val) and ``isbi`` (ISBI 2012 slices 0-23 -> 24-29, membranes).

- lapseg runs exactly as a user would: ``lapseg train --data D --out O --set
  train.time_budget_minutes=M`` (plus only the layout options a CTC folder needs), then
  ``lapseg predict``. No tuning flag: what is measured is the default.
- The peer is the MONAI recipe of ../shared/data/README.md: ``BasicUNet(features=(16, 16, 32,
  64, 128, 16))`` + DiceCE, Adam 1e-3, batch 8 of random 256x256 crops with flips and 90-degree
  rotations, per-image percentile normalisation, the same wall-clock budget (reading the data
  included), MONAI's sliding window (overlap 0.25, Gaussian), threshold 0.5, instances by
  connected components.

Measures: CTC SEG (mean Jaccard over reference objects; a reference object is matched by the
prediction covering more than half of it) and AP@0.5 = TP / (TP + FP + FN) summed over the test
images, with lapseg's implementations (cross-checked against py-ctcmetrics in the tests); the
median area ratio of matched objects (prediction / reference) shows outline bias. ISBI: pixel
error and F1 of the membrane class. Results print as a table and go to OUT/results.json.
Run it on a quiet machine: the budget is wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import print_machine_info
from lapseg.io.discovery import discover_images, output_stem
from lapseg.io.images import read_image, read_mask
from lapseg.io.labels import to_instances
from lapseg.metrics.instance import aggregate_matches, aggregate_seg, match_instances, seg_measure
from protocols import PROTOCOLS, SHARED, Protocol


def score_instances(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """SEG, AP@0.5 and the median matched-area ratio over (truth, prediction) label pairs."""
    segs, matches, ratios = [], [], []
    for truth, pred in pairs:
        seg = seg_measure(truth, pred)
        segs.append(seg)
        matches.append(match_instances(truth, pred, thresholds=[0.5]))
        for label, matched, jaccard in zip(
            seg["labels"], seg["matched"], seg["jaccard"], strict=True
        ):
            if matched and jaccard > 0.5:
                ratios.append(float((pred == matched).sum() / (truth == label).sum()))
    (record,) = aggregate_matches(matches)
    return {
        "SEG": float(aggregate_seg(segs)["seg"]),
        "AP50": float(record.ap),
        "TP": record.tp,
        "FP": record.fp,
        "FN": record.fn,
        "area_ratio": float(np.median(ratios)) if ratios else float("nan"),
    }


def score_membranes(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Pixel error and membrane F1 over (truth, prediction) membrane masks."""
    tp = fp = fn = wrong = total = 0
    for truth, pred in pairs:
        t, p = truth > 0, pred > 0
        tp += int(np.sum(t & p))
        fp += int(np.sum(~t & p))
        fn += int(np.sum(t & ~p))
        wrong += int(np.sum(t != p))
        total += t.size
    return {"pixel_error": wrong / total, "F1": 2 * tp / max(2 * tp + fp + fn, 1)}


def evaluate(protocol: Protocol, predictions: dict[str, np.ndarray]) -> dict[str, float]:
    """Score ``predictions`` (stem -> label image or mask) against the protocol's truth."""
    pairs = []
    for path in discover_images(protocol.truth):
        truth = read_mask(path)
        pred = predictions[output_stem(path)]
        pairs.append((to_instances(truth) if protocol.kind == "instances" else truth, pred))
    return score_instances(pairs) if protocol.kind == "instances" else score_membranes(pairs)


# --------------------------------------------------------------------------- lapseg


LAPSEG = [sys.executable, "-m", "lapseg"]


def run_lapseg(
    protocol: Protocol, out: Path, minutes: float, extra: list[str], predict_args: list[str]
) -> dict:
    """``lapseg train`` then ``lapseg predict``, as a user runs them."""
    overrides = [f"train.time_budget_minutes={minutes}", *protocol.options, *extra]
    train = [*LAPSEG, "train", "--data", str(protocol.train), "--out", str(out / "run")]
    for item in overrides:
        train += ["--set", item]
    started = time.perf_counter()
    subprocess.run([*train, "--no-progress"], check=True)
    train_seconds = time.perf_counter() - started
    return {
        **predict_lapseg(protocol, out / "run", out, predict_args),
        "train_s": round(train_seconds, 1),
    }


def predict_lapseg(protocol: Protocol, model: Path, out: Path, predict_args: list[str]) -> dict:
    """``lapseg predict`` with ``model`` on the protocol's test folder, scored."""
    test_dir = protocol.test_images[0].parent
    started = time.perf_counter()
    predict = [*LAPSEG, "predict", "--model", str(model), "--input", str(test_dir)]
    predict += ["--output", str(out / "pred"), "--no-progress", "--per-frame", *predict_args]
    subprocess.run(predict, check=True)
    predict_seconds = time.perf_counter() - started
    kind = "labels" if protocol.kind == "instances" else "masks"
    # still images: pred/<kind>/; a folder of tTTT.tif frames is a CTC movie: pred/<name>/frames/<kind>/
    folders = [out / "pred" / kind] if (out / "pred" / kind).is_dir() else []
    folders += sorted((out / "pred").glob(f"*/frames/{kind}"))
    predictions = {
        output_stem(p): read_mask(p) for folder in folders for p in discover_images(folder)
    }
    run = json.loads((model / "run.json").read_text())
    history = (model / "history.csv").read_text().splitlines()
    train = yaml.safe_load((model / "config.yaml").read_text())["train"]
    steps_per_epoch = -(-int(train["patches_per_epoch"]) // int(train["batch_size"]))
    return {
        **evaluate(protocol, predictions),
        "epochs": run["epochs_completed"],
        "steps": run["epochs_completed"] * steps_per_epoch,
        "predict_s": round(predict_seconds, 1),
        "history_rows": len(history) - 1,
    }


# --------------------------------------------------------------------------- MONAI peer


def _training_pairs(protocol: Protocol) -> list[tuple[np.ndarray, np.ndarray]]:
    """(image, binary target) pairs of the protocol's training folder."""
    root = protocol.train
    pairs = []
    if (root / "images").is_dir():
        masks = {output_stem(p): p for p in discover_images(root / "masks")}
        for image in discover_images(root / "images"):
            pairs.append((read_image(image).array[0], read_mask(masks[output_stem(image)])))
    else:  # CTC: frames with silver truth
        for sequence in sorted(p for p in root.iterdir() if p.name.isdigit()):
            for mask in sorted((root / f"{sequence.name}_ST" / "SEG").glob("man_seg*.tif")):
                frame = sequence / f"t{mask.stem.removeprefix('man_seg')}.tif"
                pairs.append((read_image(frame).array[0], read_mask(mask)))
    return [(image.astype(np.float32), (mask > 0).astype(np.float32)) for image, mask in pairs]


def _percentile_normalise(image: np.ndarray) -> np.ndarray:
    low, high = np.percentile(image, (1.0, 99.8))
    return ((image - low) / max(high - low, 1e-6)).astype(np.float32)


def run_monai(protocol: Protocol, out: Path, minutes: float, seed: int = 0) -> dict:
    """The MONAI recipe of ../shared/data/README.md at the same wall-clock budget."""
    import torch
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.networks.nets import BasicUNet
    from skimage.measure import label

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    deadline = started + minutes * 60.0
    pairs = [(_percentile_normalise(i), m) for i, m in _training_pairs(protocol)]
    model = BasicUNet(
        spatial_dims=2, in_channels=1, out_channels=1, features=(16, 16, 32, 64, 128, 16)
    )
    loss_fn = DiceCELoss(sigmoid=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = 0
    model.train()
    while time.perf_counter() < deadline:
        images, targets = [], []
        for _ in range(8):
            image, mask = pairs[rng.integers(len(pairs))]
            y = rng.integers(image.shape[0] - 256 + 1)
            x = rng.integers(image.shape[1] - 256 + 1)
            crop = [image[y : y + 256, x : x + 256], mask[y : y + 256, x : x + 256]]
            k, flip = int(rng.integers(4)), rng.random() < 0.5
            crop = [np.rot90(c, k) for c in crop]
            crop = [c[:, ::-1] if flip else c for c in crop]
            images.append(crop[0])
            targets.append(crop[1])
        x_t = torch.from_numpy(np.ascontiguousarray(np.stack(images)[:, None]))
        y_t = torch.from_numpy(np.ascontiguousarray(np.stack(targets)[:, None]))
        optimizer.zero_grad()
        loss = loss_fn(model(x_t), y_t)
        loss.backward()
        optimizer.step()
        steps += 1
    train_seconds = time.perf_counter() - started
    model.eval()
    predictions = {}
    started = time.perf_counter()
    with torch.no_grad():
        for path in protocol.test_images:
            image = _percentile_normalise(read_image(path).array[0].astype(np.float32))
            logits = sliding_window_inference(
                torch.from_numpy(image)[None, None],
                (256, 256),
                4,
                model,
                overlap=0.25,
                mode="gaussian",
            )
            foreground = (torch.sigmoid(logits)[0, 0] > 0.5).numpy()
            if protocol.kind == "instances":
                predictions[output_stem(path)] = label(foreground, connectivity=1)
            else:
                predictions[output_stem(path)] = foreground.astype(np.uint8)
    return {
        **evaluate(protocol, predictions),
        "steps": steps,
        "train_s": round(train_seconds, 1),
        "predict_s": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("protocol", choices=sorted(PROTOCOLS))
    parser.add_argument("--minutes", type=float, default=12.0)
    parser.add_argument("--tools", default="lapseg,monai")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-accuracy"))
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--tag", default="", help="label of this lapseg variant in the results")
    parser.add_argument(
        "--predict-arg",
        dest="predict_args",
        action="append",
        default=[],
        help="extra argument for `lapseg predict` (repeat; e.g. --predict-arg=--tta)",
    )
    parser.add_argument(
        "--reuse-model",
        type=Path,
        help="skip training: predict with this finished lapseg run folder (lapseg tools only)",
    )
    args = parser.parse_args()
    if not SHARED.is_dir():
        raise SystemExit(f"{SHARED} not found: the protocols need ../shared/data")
    print_machine_info()
    out = args.out / args.protocol
    protocol = PROTOCOLS[args.protocol](out / "prepared")
    results = {}
    for tool in args.tools.split(","):
        name = f"lapseg{args.tag}" if tool == "lapseg" else tool
        folder = out / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
        if tool == "lapseg" and args.reuse_model is not None:
            results[name] = predict_lapseg(protocol, args.reuse_model, folder, args.predict_args)
            results[name]["reused_model"] = str(args.reuse_model)
        elif tool == "lapseg":
            results[name] = run_lapseg(
                protocol, folder, args.minutes, args.overrides, args.predict_args
            )
        else:
            results[name] = run_monai(protocol, folder, args.minutes)
        print(f"{args.protocol} {name}: {json.dumps(results[name])}", flush=True)
    keys = ["SEG", "AP50", "area_ratio"] if protocol.kind == "instances" else ["pixel_error", "F1"]
    print(f"\n# {args.protocol}, {args.minutes:g} min of training each")
    print("| tool | " + " | ".join(keys) + " | train s | predict s |")
    print("| --- |" + " --- |" * (len(keys) + 2))
    for name, row in results.items():
        cells = " | ".join(f"{row[k]:.3f}" for k in keys)
        print(f"| {name} | {cells} | {row.get('train_s', '-')} | {row['predict_s']} |")
    record = out / "results.jsonl"
    with record.open("a", encoding="utf-8") as handle:
        for name, row in results.items():
            handle.write(
                json.dumps(
                    {
                        "tool": name,
                        "minutes": args.minutes,
                        "overrides": args.overrides,
                        "predict_args": args.predict_args,
                        **row,
                    }
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
