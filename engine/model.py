"""The MLP of spec §1, with parameters as one flat vector.

Layer ``i`` (1-based) computes ``z_i = W_i x_{i-1} + b_i``; hidden layers apply the activation
``x_i = φ(z_i)``; the output is ``z_L`` (no activation). Parameters are stored flat as
``[W_1, b_1, ..., W_L, b_L]`` (each ``W_i`` row-major, shape ``(d_i, d_{i-1})``), so that
eigenvectors, gradients and tangents are plain ``(P,)`` / ``(P, b)`` tensors.

Activation derivatives are closed form (the per-layer metrics need ``φ'(z_i)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from engine.errors import ConfigError

ACTIVATIONS = ("elu", "relu", "tanh")


def activation(name: str, z: torch.Tensor) -> torch.Tensor:
    """φ(z) for the named activation."""
    if name == "elu":
        return torch.nn.functional.elu(z)
    if name == "relu":
        return torch.relu(z)
    if name == "tanh":
        return torch.tanh(z)
    raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


def activation_derivative(name: str, z: torch.Tensor) -> torch.Tensor:
    """φ'(z) in closed form (ReLU: 0 at z <= 0; ELU: e^z for z <= 0)."""
    if name == "elu":
        return torch.where(z > 0, torch.ones_like(z), torch.exp(torch.clamp(z, max=0.0)))
    if name == "relu":
        return (z > 0).to(z.dtype)
    if name == "tanh":
        return 1.0 - torch.tanh(z) ** 2
    raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")


@dataclass(frozen=True)
class MLPSpec:
    """Layer sizes ``(d_0, ..., d_L)`` and the hidden activation."""

    sizes: tuple[int, ...]
    activation: str = "elu"
    _slices: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.sizes) < 2 or any(int(d) <= 0 for d in self.sizes):
            raise ConfigError(f"an MLP needs at least an input and an output size > 0, got {self.sizes}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"unknown activation {self.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
            )
        object.__setattr__(self, "sizes", tuple(int(d) for d in self.sizes))
        slices, offset = [], 0
        for d_in, d_out in zip(self.sizes[:-1], self.sizes[1:]):
            w = slice(offset, offset + d_out * d_in)
            offset += d_out * d_in
            b = slice(offset, offset + d_out)
            offset += d_out
            slices.append((w, b))
        object.__setattr__(self, "_slices", tuple(slices))

    @classmethod
    def from_shape(cls, input_dim: int, width: int, depth: int, outputs: int, activation: str = "elu") -> "MLPSpec":
        """``depth`` linear layers: input → (depth-1) hidden layers of ``width`` → outputs."""
        if depth < 1:
            raise ConfigError(f"model.depth must be >= 1, got {depth}")
        return cls((input_dim, *([width] * (depth - 1)), outputs), activation)

    @property
    def depth(self) -> int:
        """L, the number of linear layers."""
        return len(self.sizes) - 1

    @property
    def num_outputs(self) -> int:
        """c, the output dimension."""
        return self.sizes[-1]

    @property
    def num_params(self) -> int:
        """P, the number of parameters."""
        return self._slices[-1][1].stop

    @property
    def layer_slices(self) -> tuple[tuple[slice, slice], ...]:
        """Per layer, the (W, b) slices into the flat parameter vector."""
        return self._slices


def unflatten(spec: MLPSpec, theta: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Views ``(W_i, b_i)`` into ``theta``; works on batched ``(..., P)`` vectors too."""
    layers = []
    for (w, b), d_in, d_out in zip(spec.layer_slices, spec.sizes[:-1], spec.sizes[1:]):
        layers.append((theta[..., w].unflatten(-1, (d_out, d_in)), theta[..., b]))
    return layers


def init_params(
    spec: MLPSpec,
    *,
    gain: float = math.sqrt(2.0),
    seed: int = 0,
    dtype: torch.dtype = torch.float64,
    device: str | torch.device = "cpu",
    distribution: str = "normal",
) -> torch.Tensor:
    """Xavier (Glorot) init with a gain, biases zero (spec §1), deterministic from ``seed``.

    Xavier normal: ``std = gain * sqrt(2 / (fan_in + fan_out))``; uniform: bound ``std * sqrt(3)``.
    The draw is made in float64 on the CPU and then cast, so the same seed gives the same
    network on every device and dtype.
    """
    if distribution not in ("normal", "uniform"):
        raise ConfigError(f"model.init must be 'normal' or 'uniform', got {distribution!r}")
    gen = torch.Generator().manual_seed(int(seed))
    theta = torch.zeros(spec.num_params, dtype=torch.float64)
    for (w, _), d_in, d_out in zip(spec.layer_slices, spec.sizes[:-1], spec.sizes[1:]):
        std = gain * math.sqrt(2.0 / (d_in + d_out))
        if distribution == "normal":
            vals = torch.randn(d_out * d_in, generator=gen, dtype=torch.float64) * std
        else:
            bound = std * math.sqrt(3.0)
            vals = (torch.rand(d_out * d_in, generator=gen, dtype=torch.float64) * 2 - 1) * bound
        theta[w] = vals
    return theta.to(dtype=dtype, device=device)


def forward(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Network output ``f(X; θ)`` of shape ``(n, c)``."""
    h = X
    layers = unflatten(spec, theta)
    for i, (W, b) in enumerate(layers):
        h = torch.nn.functional.linear(h, W, b)
        if i < len(layers) - 1:
            h = activation(spec.activation, h)
    return h


@dataclass
class Intermediates:
    """Forward-pass quantities needed by the layer-structure metrics (spec §3)."""

    xs: list[torch.Tensor]  # x_0 .. x_{L-1}: inputs of each layer, (n, d_{i-1})
    zs: list[torch.Tensor]  # z_1 .. z_L: pre-activations, (n, d_i); zs[-1] is the output
    dphi: list[torch.Tensor]  # φ'(z_1) .. φ'(z_{L-1}), (n, d_i)

    @property
    def output(self) -> torch.Tensor:
        return self.zs[-1]


def forward_intermediates(spec: MLPSpec, theta: torch.Tensor, X: torch.Tensor) -> Intermediates:
    """Forward pass that keeps every layer input, pre-activation and activation derivative."""
    xs, zs, dphi = [X], [], []
    layers = unflatten(spec, theta)
    for i, (W, b) in enumerate(layers):
        z = torch.nn.functional.linear(xs[-1], W, b)
        zs.append(z)
        if i < len(layers) - 1:
            dphi.append(activation_derivative(spec.activation, z))
            xs.append(activation(spec.activation, z))
    return Intermediates(xs=xs, zs=zs, dphi=dphi)
