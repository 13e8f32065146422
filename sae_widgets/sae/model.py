"""The sparse autoencoder module: one small nn.Module and its typed config.

Orientation (shared with checkpoint io and the analysis layer): W_enc (d_in, n_units),
b_enc (n_units,), W_dec (n_units, d_in), b_dec (d_in,). Codes are unit activations:
codes = act((x - b_dec) @ W_enc + b_enc), reconstruction = codes @ W_dec + b_dec.
"""

from __future__ import annotations

import itertools
import math
import numbers
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from sae_widgets.memory import check_memory
from sae_widgets.sae import registry
from sae_widgets.sae.forward import ForwardOutput, TrainOutput, forward_of
from sae_widgets.sae.inputs import positive_factor, threshold_values, weight_tensor
from sae_widgets.sae.registry import ACTIVATIONS
from sae_widgets.sae.sparse_ops import SparseCodes, encoder_matmul


def _integer(name: str, value: Any, low: int, high: int | None = None, what: str = "") -> int:
    """`value` as an int in [low, high]; integral floats and numpy ints (from a parameter
    search) are accepted, bools, fractions and strings are not."""
    integral = isinstance(value, int | np.integer) or (
        isinstance(value, float) and value.is_integer()
    )
    bounds = f"[{low}, {high}]" if high is not None else f">= {low}"
    number = isinstance(value, int | float | np.number) and not isinstance(value, bool | np.bool_)
    if not number and value is not None:  # None: a value left out, not of the wrong type
        raise TypeError(f"{name} must be an integer {bounds}{what}, got {value!r}")
    if value is None:
        raise ValueError(f"{name} must be an integer {bounds}{what}, got None")
    if not integral or value < low or (high is not None and value > high):
        raise ValueError(f"{name} must be an integer {bounds}{what}, got {value!r}")
    return int(value)


@dataclass
class SAEConfig:
    """Architecture of a SparseAutoencoder (training hyperparameters live in TrainConfig)."""

    d_in: int
    """Dimension of the input vectors."""
    n_units: int
    """Number of units (latents, dictionary atoms)."""
    activation: str = "topk"
    """A name in `sae_widgets.sae.registry.ACTIVATIONS`."""
    k: int | None = None
    """Active units per sample for topk, on average for batchtopk and matryoshka_batchtopk;
    jumprelu: the L0 its thresholds start at (training only, optional); relu: unused (None)."""
    bandwidth: float = 0.05
    """JumpReLU straight-through kernel width, in training space (E||x|| = sqrt(d_in))."""
    init_threshold: float = 0.1
    """JumpReLU threshold of a new module; training re-initialises it from data (see k)."""
    prefix_sizes: tuple[int, ...] | None = None
    """Matryoshka: increasing sizes of the nested prefixes of units trained to reconstruct,
    the last being n_units (appended if missing); None: `registry.default_prefix_sizes`.
    Must stay None for other activations."""

    def __post_init__(self) -> None:
        for name in ("d_in", "n_units"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
            setattr(self, name, int(value))
        spec = registry.get(self.activation)
        what = f" for activation={self.activation!r}"
        if spec.k == "architecture":
            self.k = _integer("k", self.k, 1, self.n_units, what)
        elif spec.k == "init" and self.k is not None:  # a target L0, capped where it is used
            self.k = _integer("k", self.k, 1, None, what)
        elif spec.k == "unused":
            self.k = None
        for name in ("bandwidth", "init_threshold"):
            value = getattr(self, name)
            # numbers.Real: numpy floats too (np.float32(0.1) from a search was refused)
            if (
                isinstance(value, bool | np.bool_)
                or not isinstance(value, numbers.Real)
                or not (math.isfinite(value) and float(value) > 0)
            ):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
            setattr(self, name, float(value))
        self.prefix_sizes = self._prefixes(spec)

    def _prefixes(self, spec: registry.ActivationSpec) -> tuple[int, ...] | None:
        if not spec.prefixes:
            if self.prefix_sizes is not None:
                raise ValueError(
                    f"prefix_sizes applies to nested-prefix activations "
                    f"({', '.join(r.name for r in registry.REGISTRY.values() if r.prefixes)}), "
                    f"not {self.activation!r}; got {self.prefix_sizes!r}"
                )
            return None
        if self.prefix_sizes is None:
            return registry.default_prefix_sizes(self.n_units)
        given = self.prefix_sizes
        if (  # a 0-d array or tensor has __iter__, but iterating it raises
            isinstance(given, str | bytes)
            or not hasattr(given, "__iter__")
            or getattr(given, "ndim", 1) == 0
        ):
            raise TypeError(f"prefix_sizes must be a sequence of integers, got {given!r}")
        sizes = [
            _integer("prefix_sizes", v, 1, self.n_units, f" (n_units={self.n_units})")
            for v in given
        ]
        if sizes and sizes[-1] != self.n_units:
            sizes.append(self.n_units)
        if not sizes or any(b <= a for a, b in itertools.pairwise(sizes)):
            raise ValueError(
                f"prefix_sizes must be strictly increasing integers ending at n_units="
                f"{self.n_units}, got {given!r}"
            )
        return tuple(sizes)

    @property
    def spec(self) -> registry.ActivationSpec:
        """The registry row of the activation."""
        return registry.get(self.activation)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of the config."""
        out = asdict(self)
        if self.prefix_sizes is not None:
            out["prefix_sizes"] = list(self.prefix_sizes)
        return out


class SparseAutoencoder(nn.Module):
    """A one-layer sparse autoencoder; its activation's forward pass comes from the registry.

    The threshold (for activations that keep one) is read with `threshold` and written with
    `set_threshold_` / `scale_threshold_`: how it is stored (a log-space parameter for a
    learned one, a buffer for a running one) stays inside this class.
    """

    log_threshold: nn.Parameter  # threshold == "learned"
    batch_threshold: Tensor  # threshold == "running" (a buffer)

    def __init__(self, cfg: SAEConfig, generator: torch.Generator | None = None) -> None:
        if not isinstance(cfg, SAEConfig):
            raise TypeError(f"cfg must be an SAEConfig; got {type(cfg).__name__}")
        # W_enc and W_dec in float32: refused here rather than torch's allocator error, or
        # the kernel killing the process when the pages are first written
        what = f"an SAE of n_units={cfg.n_units} on d_in={cfg.d_in}"
        check_memory(8 * cfg.d_in * cfg.n_units, what, "ask for fewer units")
        super().__init__()
        self.cfg = cfg
        self.spec = registry.get(cfg.activation)
        self._forward = forward_of(self.spec)
        d, n = cfg.d_in, cfg.n_units
        self.W_enc = nn.Parameter(torch.empty(d, n))
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.W_dec = nn.Parameter(torch.empty(n, d))
        self.b_dec = nn.Parameter(torch.zeros(d))
        if self.spec.threshold == "learned":
            self.log_threshold = nn.Parameter(torch.full((n,), math.log(cfg.init_threshold)))
        elif self.spec.threshold == "running":
            # estimated during training; 0 until then (plain ReLU at inference)
            self.register_buffer("batch_threshold", torch.zeros(n))
        self.matmul_dtype: torch.dtype | None = None
        """The encoder matmul's dtype where the torch ops run (a GPU): torch.bfloat16 for
        mixed precision (weights, decoder, loss and gradients stay float32); None: the
        weights' own. The CPU kernels ignore it (sae_widgets.sae.sparse_ops.encoder_matmul)."""
        self.reset_parameters(generator)

    # ----------------------------------------------------------------- parameters
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Random unit-norm decoder rows; the encoder starts as the decoder's transpose
        (10x smaller for activations that start with about half the units active)."""
        with torch.no_grad():
            W_dec = torch.randn(self.cfg.n_units, self.cfg.d_in, generator=generator)
            W_dec /= W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
            self.W_dec.copy_(W_dec)
            self.W_enc.copy_(W_dec.t() * (0.1 if self.spec.small_encoder_init else 1.0))
            self.b_enc.zero_()
            self.b_dec.zero_()

    @property
    def threshold(self) -> Tensor | None:
        """(n_units,) inference threshold in user space, or None; differentiable when learned."""
        if self.spec.threshold == "learned":
            return self.log_threshold.exp()
        if self.spec.threshold == "running":
            return self.batch_threshold
        return None

    @torch.no_grad()
    def set_threshold_(self, threshold: Any) -> None:
        """Set the per-unit threshold (a scalar broadcasts; finite and at least 0, checked
        here); a learned one is reproduced bit for bit (its log is nudged until exp gives the
        value back)."""
        if self.spec.threshold == "none":
            raise ValueError(f"activation {self.cfg.activation!r} keeps no threshold")
        self.write_threshold_(threshold_values(threshold, self.cfg.n_units))

    @torch.no_grad()
    def write_threshold_(self, t: Tensor) -> None:
        """Store a checked (n_units,) float threshold, unchecked: the trainer's running update
        each step (checking it there would make a GPU wait every step); users call
        `set_threshold_`."""
        if self.spec.threshold == "running":
            self.batch_threshold.copy_(t)
            return
        target = t.to(self.log_threshold).clamp_min(1e-30)
        log = target.log()
        up, down = torch.full_like(log, math.inf), torch.full_like(log, -math.inf)
        for _ in range(4):  # log(exp(a)) can miss a by an ulp; a neighbour usually hits it
            back = log.exp()
            nudged = torch.where(
                back < target, torch.nextafter(log, up), torch.nextafter(log, down)
            )
            log = torch.where(back == target, log, nudged)
        self.log_threshold.copy_(log)

    @torch.no_grad()
    def scale_threshold_(self, factor: float | Tensor) -> None:
        """Multiply the threshold by `factor` (a number or (n_units,)); no-op without one."""
        if self.spec.threshold == "learned":
            f = torch.as_tensor(factor, dtype=self.log_threshold.dtype)
            self.log_threshold.add_(f.to(self.log_threshold.device).log())
        elif self.spec.threshold == "running":
            self.batch_threshold.mul_(factor)

    def threshold_parameters(self) -> list[nn.Parameter]:
        """Trained parameters that set the threshold (the trainer gives them a larger rate:
        they act in log space, where a step of size lr is a relative change of lr)."""
        return [self.log_threshold] if self.spec.threshold == "learned" else []

    @classmethod
    def from_weights(
        cls,
        cfg: SAEConfig,
        W_enc: Any,
        b_enc: Any,
        W_dec: Any,
        b_dec: Any,
        threshold: Any = None,
    ) -> SparseAutoencoder:
        """Build a module from user-space weights (numpy or torch), orientation as above."""
        model = cls(cfg)
        shapes = {
            "W_enc": (cfg.d_in, cfg.n_units),
            "b_enc": (cfg.n_units,),
            "W_dec": (cfg.n_units, cfg.d_in),
            "b_dec": (cfg.d_in,),
        }
        given = {"W_enc": W_enc, "b_enc": b_enc, "W_dec": W_dec, "b_dec": b_dec}
        with torch.no_grad():
            for name, value in given.items():  # NaN weights were taken: codes all NaN
                getattr(model, name).copy_(weight_tensor(value, name, shapes[name]))
            kind = model.spec.threshold
            if kind == "learned" and threshold is None:
                raise ValueError(f"threshold is required for activation={cfg.activation!r}")
            if threshold is not None:  # a scalar or (n_units,), shape checked when set
                # below 0 acts as 0 here as in SAELens and dictionary_learning (both gate
                # with a ReLU too): a file's negative thresholds load as 0, same codes
                threshold = weight_tensor(threshold, "threshold", None).clamp_min(0)
            if kind != "none":
                model.set_threshold_(threshold if threshold is not None else 0.0)
        return model

    def weights(self) -> dict[str, Tensor]:
        """User-space weights (detached copies): W_enc, b_enc, W_dec, b_dec[, threshold]."""
        out = {
            "W_enc": self.W_enc.detach().clone(),
            "b_enc": self.b_enc.detach().clone(),
            "W_dec": self.W_dec.detach().clone(),
            "b_dec": self.b_dec.detach().clone(),
        }
        threshold = self.threshold
        if threshold is not None:
            out["threshold"] = threshold.detach().clone()
        return out

    @torch.no_grad()
    def rescale_inputs_(self, factor: float) -> None:
        """Make the module act on inputs multiplied by `factor` (a finite number above 0;
        codes scale with it too).

        Training runs on x * s; folding the scale back is rescale_inputs_(1 / s).
        """
        factor = positive_factor(factor, "factor")
        self.b_enc.mul_(factor)
        self.b_dec.mul_(factor)
        self.scale_threshold_(factor)

    @torch.no_grad()
    def fold_decoder_norms_(self) -> None:
        """Give decoder rows unit norm without changing the codes' contribution: each unit's
        encoder column, bias and threshold take its norm (exact except for TopK ranking)."""
        norms = self.W_dec.norm(dim=1).clamp_min(1e-12)
        self.W_dec.div_(norms[:, None])
        self.W_enc.mul_(norms)
        self.b_enc.mul_(norms)
        self.scale_threshold_(norms)

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        """Rescale decoder rows to unit norm."""
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_grad_(self) -> None:
        """Drop the gradient component along each decoder row (keeps rows on the sphere)."""
        grad = self.W_dec.grad
        if grad is None:
            return
        W = self.W_dec
        # fused ops, no (n_units, d) temporaries: 1.0 ms against 2.6 for mul/sum/pow/sub
        # at (2048, 256) (thread CPU time)
        squared_norms = torch.linalg.vector_norm(W, dim=1, keepdim=True).square_()
        parallel = torch.linalg.vecdot(grad, W).unsqueeze(1) / squared_norms.clamp_min_(1e-12)
        grad.addcmul_(W, parallel, value=-1)

    # ----------------------------------------------------------------- inference
    def preacts(self, x_BD: Tensor) -> Tensor:
        """(B, n_units) pre-activations (x - b_dec) @ W_enc + b_enc."""
        pre_BU = encoder_matmul(x_BD - self.b_dec, self.W_enc, self.b_enc, self.matmul_dtype)
        return pre_BU.to(self.W_enc.dtype)  # from a mixed-precision matmul too

    def _check_rows(self, rows: Any, width: int, name: str) -> None:
        """A (B, width) tensor of the module's dtype and device, or an error naming `name`
        (not torch's shape or dtype message from inside addmm)."""
        W = self.W_dec
        if not isinstance(rows, Tensor):
            raise TypeError(
                f"{name} must be a torch.Tensor of shape (batch, {width}); got "
                f"{type(rows).__name__} (sae_widgets.SAE takes numpy arrays)"
            )
        if rows.dim() != 2 or rows.shape[1] != width:
            raise ValueError(f"{name} must have shape (batch, {width}); got {tuple(rows.shape)}")
        if rows.dtype != W.dtype and not torch.is_autocast_enabled(rows.device.type):
            raise TypeError(f"{name} must have the module's dtype {W.dtype}; got {rows.dtype}")
        if rows.device != W.device:
            raise ValueError(f"{name} is on {rows.device}; the module's weights on {W.device}")

    def encode(self, x_BD: Tensor) -> Tensor:
        """(B, n_units) dense inference-time codes (batchtopk uses its threshold)."""
        self._check_rows(x_BD, self.cfg.d_in, "x")
        return self._forward.encode(self, self.preacts(x_BD))

    def inference_cut(self) -> Tensor | None:
        """(n_units,) cut-offs c where inference codes are pre * (pre > c) (relu: 0; a
        threshold t: max(t, 0)); None where the rule is another (topk). No gradient."""
        gate = getattr(self._forward, "gate", None)
        return None if gate is None else gate(self)

    def encode_topk(self, x_BD: Tensor, pre_BU: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Per-sample top-k activations only (topk): (values (B, k), units (B, k)); values
        are ReLU'd, so some may be 0."""
        if not self.spec.per_sample_k:
            raise ValueError(f"encode_topk needs activation='topk', not {self.cfg.activation!r}")
        assert self.cfg.k is not None
        if pre_BU is None:
            pre_BU = self.preacts(x_BD)
        # plain torch.topk; the encoders of sae/encoding.py use the compiled kernel on CPU
        values_BK, units_BK = pre_BU.topk(self.cfg.k, dim=1, sorted=False)
        return torch.relu(values_BK), units_BK

    def decode(self, codes_BU: Tensor) -> Tensor:
        """(B, d_in) reconstruction from dense codes."""
        self._check_rows(codes_BU, self.cfg.n_units, "codes")
        return torch.addmm(self.b_dec, codes_BU, self.W_dec)

    def forward(self, x_BD: Tensor, dead_mask: Tensor | None = None) -> ForwardOutput:
        """Reconstruction, dense codes and loss terms (batchtopk selects per batch in training)."""
        self._check_rows(x_BD, self.cfg.d_in, "x")
        out = self.forward_train(x_BD, dead_mask)
        codes = out.codes
        if isinstance(codes, SparseCodes):
            codes = codes.to_dense(self.cfg.n_units)
        return ForwardOutput(out.reconstruction, codes, out.fvu, out.sparsity, out.aux_fvu, out.l0)

    # ----------------------------------------------------------------- training
    def forward_train(
        self, x_BD: Tensor, dead_mask: Tensor | None = None, k_aux: int | None = None
    ) -> TrainOutput:
        """Training forward: sparse-training activations stay sparse after the encoder matmul."""
        return self._forward.train(self, x_BD, dead_mask, k_aux)


__all__ = ["ACTIVATIONS", "ForwardOutput", "SAEConfig", "SparseAutoencoder", "TrainOutput"]
