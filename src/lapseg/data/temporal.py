"""Temporal context for time-lapse sequences: which neighbouring frames feed the network."""

from __future__ import annotations

from dataclasses import dataclass

from lapseg.errors import LapsegInputError

EDGE_MODES = ("replicate", "reflect")
BACKGROUND_MODES = ("none", "median")
TRUTH_SOURCES = ("GT", "ST", "GT+ST")
SPLIT_MODES = ("sequence", "time_blocks")


@dataclass(frozen=True)
class TemporalConfig:
    """Time-lapse options (used with ``data.layout`` "sequences" or "ctc").

    context : k; the network sees frames t-k .. t+k as 2k+1 input channels (000's Network1 is
        k = 0, Network5 is k = 2). ``model.in_channels`` follows automatically.
    edge_mode : at sequence ends, "replicate" the edge frame (000's rule) or "reflect".
    background : "median" subtracts each sequence's temporal median (000, eq. 3) before
        normalisation; "none" keeps the frames as they are.
    truth : Cell Tracking Challenge annotations to train on: "GT" (gold, sparse), "ST" (silver,
        every frame) or "GT+ST" (gold where present, silver elsewhere).
    split : "sequence" (whole sequences go to train or validation: neighbouring frames are
        near-duplicates, so a frame-random split leaks) or "time_blocks" (contiguous blocks of
        one sequence separated by ``gap`` unused frames).
    """

    context: int = 0
    edge_mode: str = "replicate"
    background: str = "none"
    truth: str = "GT"
    split: str = "sequence"
    gap: int = 5

    def __post_init__(self) -> None:
        if self.context < 0:
            raise LapsegInputError(f"temporal.context={self.context!r} must be >= 0")
        for name, allowed in (
            ("edge_mode", EDGE_MODES),
            ("background", BACKGROUND_MODES),
            ("truth", TRUTH_SOURCES),
            ("split", SPLIT_MODES),
        ):
            if getattr(self, name) not in allowed:
                raise LapsegInputError(
                    f"temporal.{name}={getattr(self, name)!r} is not one of {', '.join(allowed)}"
                )
        if self.gap < 0:
            raise LapsegInputError(f"temporal.gap={self.gap!r} must be >= 0")
