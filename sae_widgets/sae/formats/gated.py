"""Gated SAEs (Rajamanoharan et al. 2024) read as the JumpReLU SAEs they are at inference.

A gated SAE (SAELens "gated", dictionary_learning's GatedAutoEncoder) encodes::

    z      = (x - b_dec) @ W_enc
    codes  = 1[z + b_gate > 0] * relu(exp(r_mag) * z + b_mag)

With s = exp(r_mag) > 0 and pre = s * z + b_mag, the gate z > -b_gate is pre > b_mag - s b_gate
(multiplying by s keeps the order), so the codes are a JumpReLU's, pre * (pre > t), with the
encoder W_enc * s, the bias b_mag and the threshold t = max(b_mag - s * b_gate, 0): where t <= 0
the gate opens wherever relu(pre) is positive. The paper notes this equivalence (its weight
sharing makes the gate and the magnitude one direction). The two formulas round differently,
so a value within float32 rounding of its gate may fall the other way.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


def gated_as_jumprelu(
    W_enc_DU: Tensor, r_mag: Tensor, b_gate: Tensor, b_mag: Tensor, path: Path
) -> tuple[Tensor, Tensor, Tensor]:
    """(W_enc, b_enc, threshold) of the JumpReLU that encodes as the gated SAE does.

    Computed in float64 and returned as float32. A ValueError naming the file and tensor where
    a gate vector has the wrong length or exp(r_mag) is not a positive finite number (the
    equivalence needs s > 0; an r_mag of +-100 overflows or underflows float32)."""
    n_units = W_enc_DU.shape[1]
    for name, vector in (("r_mag", r_mag), ("b_gate", b_gate), ("b_mag", b_mag)):
        if vector.numel() != n_units:
            raise ValueError(
                f"{path}: {name} must hold one number a unit ({n_units}); got shape "
                f"{tuple(vector.shape)}"
            )
    scale = r_mag.reshape(-1).double().exp()
    limits = torch.finfo(torch.float32)
    bad = ~((scale >= limits.tiny) & (scale <= limits.max))  # NaN fails both
    if bool(bad.any()):
        unit = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{path}: r_mag[{unit}] = {float(r_mag.reshape(-1)[unit])!r} gives a magnitude "
            "scale exp(r_mag) outside float32's positive range; expected r_mag within about "
            "-87 to 88"
        )
    gate, magnitude = b_gate.reshape(-1).double(), b_mag.reshape(-1).double()
    W_enc = (W_enc_DU.double() * scale).float()
    threshold = (magnitude - scale * gate).clamp(min=0).float()
    return W_enc, magnitude.float(), threshold
