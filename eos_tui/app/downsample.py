"""The panels' downsampling is the engine's (:mod:`engine.analysis.downsample`), shared with the
static figures; this name is kept for the UI's modules."""

from engine.analysis.downsample import finite_xy, interp_at, minmax_downsample, value_at

__all__ = ["finite_xy", "minmax_downsample", "interp_at", "value_at"]
