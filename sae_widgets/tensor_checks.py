"""Checks on a torch tensor given as data: shared by data/ (Dataset fields, labels) and sae/
(the estimator's inputs, metrics), which never import each other (DESIGN.md layering).

torch is not imported here: a tensor can only exist if torch is already loaded, and
`import sae_widgets.data` must not pay for torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["check_dense", "check_has_values", "densified"]


def check_has_values(tensor: Any, name: str) -> None:
    """ValueError for a tensor on the 'meta' device (a shape without values)."""
    if tensor.is_meta:
        raise ValueError(f"{name} is a tensor on the 'meta' device, which holds no values")


def check_dense(tensor: Any, name: str) -> None:
    """TypeError for a torch sparse tensor (COO, CSR, ...), which most torch operations
    (min, max, .numpy(), matmul on some backends) refuse with errors naming no argument."""
    import torch  # already loaded: `tensor` is one of its tensors

    if tensor.layout != torch.strided:
        raise TypeError(
            f"{name} must be a dense tensor; got a sparse one (layout {tensor.layout}): "
            "call .to_dense() first"
        )


def densified(tensor: Any) -> Any:
    """`tensor` as a dense (strided) tensor: a sparse one converted, a dense one as it is.
    For outputs we read ourselves (a hooked layer's), where refusing would only move the
    `.to_dense()` into the user's model."""
    import torch  # already loaded: `tensor` is one of its tensors

    return tensor if tensor.layout == torch.strided else tensor.to_dense()


def check_cast(rows: Any, batch: Any, start: int, name: str = "data", ids: Any = None) -> None:
    """`batch`, float rows (numpy) cast to a model's dtype, holds no inf that `rows` did
    not: finite inputs beyond a float16 model's range are named as `name` (they became inf and
    were reported downstream as NaN activations or NaN figures). The first bad row is named
    as `start` + its place in the batch, or by `ids` (each batch row's sample index)."""
    import numpy as np
    import torch

    if batch.dtype in (torch.float32, torch.float64) or not batch.is_floating_point():
        return
    bad = ~torch.isfinite(batch.reshape(batch.shape[0], -1)).all(dim=1)
    if bool(bad.any()) and np.isfinite(rows).all():
        place = int(bad.nonzero()[0, 0])
        row = start + place if ids is None else int(ids[place])
        raise ValueError(
            f"{name}: X row {row} holds values beyond {batch.dtype}'s range (|x| up to "
            f"{float(np.abs(rows).max()):.3g} > {torch.finfo(batch.dtype).max:.3g}), the dtype "
            "of the model's parameters; scale the inputs, or run the model in float32"
        )
