"""Write ISBI 2012 as lapseg folders with membranes as the target (the peer protocol's split).

    python examples/prepare_isbi_folders.py --out runs/isbi-folders

creates ``OUT/train24/{images,masks}`` (slices 0-23) and ``OUT/test/{images,masks}`` (slices
24-29) from ``../shared/data/isbi2012-em``; masks are 255 on membranes (label value 0 in the
source files), 0 elsewhere. Use them with ``lapseg cv``, ``lapseg search``, ``lapseg baseline``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lapseg.io.images import read_mask, write_png

SOURCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isbi2012-em" / "train"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if not SOURCE.is_dir():
        raise SystemExit(f"{SOURCE} not found")
    for subset, slices in (("train24", range(24)), ("test", range(24, 30))):
        for i in slices:
            image = args.out / subset / "images" / f"{i}.png"
            image.parent.mkdir(parents=True, exist_ok=True)
            image.write_bytes((SOURCE / "image" / f"{i}.png").read_bytes())
            membranes = (read_mask(SOURCE / "label" / f"{i}.png") == 0).astype(np.uint8) * 255
            write_png(args.out / subset / "masks" / f"{i}.png", membranes)
    print(f"wrote {args.out / 'train24'} and {args.out / 'test'}")


if __name__ == "__main__":
    main()
