"""MLP building blocks, encoder, decoder, distribution heads and the AMP-aware optimiser (REFERENCE §5.2, §5.3)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Mapping
from typing import Any, Union

import torch
from torch import Tensor, nn

from compilerdream.agent.distributions import Bernoulli, OneHotCategorical, TwoHot, UnitGaussian

Distribution = Union[TwoHot, OneHotCategorical, UnitGaussian, Bernoulli]

# Every LayerNorm in the reference uses eps 1e-3 (TF default), not PyTorch's 1e-5.
LAYER_NORM_EPS = 1e-3

_ACTIVATIONS = {"silu": nn.SiLU, "elu": nn.ELU, "relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU, "none": nn.Identity}


def activation(name: str) -> nn.Module:
    """Activation module by config name (`silu`, `elu`, `relu`, `tanh`, `gelu`, `none`)."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


def normalization(name: str, size: int) -> nn.Module:
    """Normalisation module by config name (`layer` or `none`)."""
    if name == "layer":
        return nn.LayerNorm(size, eps=LAYER_NORM_EPS)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {name!r}; expected 'layer' or 'none'")


def linear(in_features: int, out_features: int) -> nn.Linear:
    """Linear layer with Xavier-uniform weights and zero bias, the reference's TF-like initialisation (§5.2)."""
    layer = nn.Linear(in_features, out_features)
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class MLP(nn.Sequential):
    """`layers` × [Linear(units) -> norm -> act]; with 0 layers it is the identity and `out_dim == in_dim`."""

    def __init__(self, in_dim: int, layers: int, units: int, act: str = "silu", norm: str = "layer") -> None:
        blocks: list[nn.Module] = []
        for index in range(layers):
            blocks += [linear(in_dim if index == 0 else units, units), normalization(norm, units), activation(act)]
        super().__init__(*blocks)
        self.out_dim = units if layers else in_dim


def mlp_options(cfg: Mapping[str, Any], prefix: str, layers_key: str = "layers", units_key: str = "units") -> dict:
    """Keyword arguments of `MLP` read from the flat config block `prefix` (e.g. `reward_head.layers`)."""
    return {
        "layers": int(cfg[f"{prefix}.{layers_key}"]),
        "units": int(cfg[f"{prefix}.{units_key}"]),
        "act": cfg[f"{prefix}.act"],
        "norm": cfg[f"{prefix}.norm"],
    }


def vector_keys(obs_space: Mapping[str, tuple], pattern: str) -> list[str]:
    """Observation keys with a 1-D shape whose name matches `pattern` (re.match), in obs-space order (§5.2).

    Scalars (reward, is_first, reduction) are never encoded; `action` is the model's input, not an observation.
    """
    regex = re.compile(pattern)
    return [key for key, shape in obs_space.items() if len(shape) == 1 and key != "action" and regex.match(key)]


class Encoder(nn.Module):
    """Concatenates the selected vector observations and embeds them with an MLP (REFERENCE §5.2 Encoder)."""

    def __init__(self, obs_space: Mapping[str, tuple], mlp_keys: str, layers: int, units: int, act: str, norm: str):
        super().__init__()
        self.keys = vector_keys(obs_space, mlp_keys)
        if not self.keys:
            raise ValueError(f"encoder.mlp_keys {mlp_keys!r} selects no 1-D observation of {dict(obs_space)}")
        in_dim = sum(int(obs_space[key][0]) for key in self.keys)
        self.mlp = MLP(in_dim, layers, units, act, norm)
        self.out_dim = self.mlp.out_dim

    def forward(self, obs: Mapping[str, Tensor]) -> Tensor:
        """obs[key]: (..., size_key) -> embedding (..., out_dim)."""
        inputs = torch.cat([obs[key].float() for key in self.keys], -1)
        return self.mlp(inputs)


class Decoder(nn.Module):
    """Shared MLP trunk with one linear head per key, each a unit Gaussian (REFERENCE §5.2 Decoder)."""

    def __init__(self, feat_dim: int, shapes: Mapping[str, int], layers: int, units: int, act: str, norm: str):
        super().__init__()
        self.trunk = MLP(feat_dim, layers, units, act, norm)
        self.heads = nn.ModuleDict({key: linear(self.trunk.out_dim, size) for key, size in shapes.items()})

    def forward(self, feat: Tensor) -> dict[str, UnitGaussian]:
        hidden = self.trunk(feat)
        return {key: UnitGaussian(head(hidden)) for key, head in self.heads.items()}


class DistHead(nn.Module):
    """MLP trunk + linear output read as a distribution (REFERENCE §5.2 reward/discount heads, actor, critic).

    dist: `disc` (two-hot over `bins` on [low, high]), `mse` (scalar unit Gaussian), `binary` (Bernoulli) or
    `onehot` (categorical over `size` classes with `unimix` and temperature `temp`).
    """

    def __init__(
        self,
        in_dim: int,
        dist: str,
        layers: int,
        units: int,
        act: str = "silu",
        norm: str = "layer",
        size: int = 1,
        unimix: float = 0.0,
        temp: float = 1.0,
        bins: int = 255,
        low: float = -3.0,
        high: float = 3.0,
    ) -> None:
        super().__init__()
        out_dim = {"disc": bins, "mse": 1, "binary": 1, "onehot": size}.get(dist)
        if out_dim is None:
            raise ValueError(f"unknown head dist {dist!r}; expected disc, mse, binary or onehot")
        self.dist, self.unimix, self.temp, self.low, self.high = dist, unimix, temp, low, high
        self.trunk = MLP(in_dim, layers, units, act, norm)
        self.out = linear(self.trunk.out_dim, out_dim)

    def forward(self, feat: Tensor) -> Distribution:
        out = self.out(self.trunk(feat))
        if self.dist == "disc":
            return TwoHot(out, self.low, self.high)
        if self.dist == "mse":
            return UnitGaussian(out.squeeze(-1), event_dims=0)
        if self.dist == "binary":
            return Bernoulli(out.squeeze(-1))
        return OneHotCategorical(out.float() / self.temp, self.unimix)


class Precision:
    """Mixed-precision policy: fp32, fp16 autocast + GradScaler, or bf16 autocast; always fp32 on CPU.

    `precision` is the reference's config value: 32, 16 or "bf16" (REFERENCE §1.3, we allow CPU and bf16).
    Losses compute their distributions in fp32 whatever the autocast dtype (fixes REFERENCE §7.15).
    """

    def __init__(self, device: torch.device | str, precision: int | str) -> None:
        self.device = torch.device(device)
        if str(precision) not in ("16", "32", "bf16"):
            raise ValueError(f"precision must be 16, 32 or 'bf16', got {precision!r}")
        self.dtype: torch.dtype | None = None
        if self.device.type == "cuda":
            self.dtype = {"16": torch.float16, "bf16": torch.bfloat16}.get(str(precision))
        self.scales_loss = self.dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.scales_loss)


class Optimizer:
    """Adam (L2-style weight decay) with loss scaling and grad-norm clipping for one set of modules (§5.1, §5.3).

    `step(loss)` returns `<name>_loss`, `<name>_grad_norm` and, with fp16, `<name>_loss_scale`.
    """

    def __init__(
        self,
        name: str,
        parameters: Iterable[nn.Parameter],
        lr: float,
        eps: float,
        clip: float,
        wd: float,
        precision: Precision,
    ) -> None:
        self.name, self.clip = name, clip
        self.parameters = [p for p in parameters if p.requires_grad]
        # foreach: the same arithmetic as the per-parameter loop (bit for bit), in a few multi-tensor kernels.
        self.optimizer = torch.optim.Adam(self.parameters, lr=lr, eps=eps, weight_decay=wd, foreach=True)
        self.scaler = precision.grad_scaler()

    def step(self, loss: Tensor) -> dict[str, Tensor | float]:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        max_norm = self.clip if self.clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.parameters, max_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        metrics = {f"{self.name}_loss": loss.detach(), f"{self.name}_grad_norm": grad_norm.detach()}
        if self.scaler.is_enabled():
            metrics[f"{self.name}_loss_scale"] = self.scaler.get_scale()
        return metrics

    def state_dict(self) -> dict[str, Any]:
        return {"optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        for group in self.optimizer.param_groups:  # checkpoints of older versions saved foreach=None
            group["foreach"] = True
        if state["scaler"]:
            self.scaler.load_state_dict(state["scaler"])
