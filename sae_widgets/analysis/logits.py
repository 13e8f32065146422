"""Logit effects: which output tokens a unit's decoder direction pushes up or down.

For a residual-stream SAE on a causal language model, the direct effect of unit u on the
next-token logits is its decoder row through the unembedding, ``W_dec[u] @ W_U`` (the
final norm's scale folded in when the caller passes it; the norm's data-dependent
division is left out, as sae_vis and Neuronpedia do). Pure numpy: token ids in, token ids
out; turning ids into text is the tokenizer's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from sae_widgets.analysis.checks import check_finite, check_positive_int

__all__ = ["LogitEffects", "logit_effects"]


@dataclass(frozen=True)
class LogitEffects:
    """The most promoted and suppressed tokens of one direction.

    promoted_ids, promoted_values: the `top` token ids with the largest logit effect,
        largest first. suppressed_ids, suppressed_values: the `top` most negative, most
        negative first.
    """

    promoted_ids: NDArray[np.int64]
    promoted_values: NDArray[np.float32]
    suppressed_ids: NDArray[np.int64]
    suppressed_values: NDArray[np.float32]


def _as_matrix(value: Any, name: str, ndim: int) -> NDArray[np.float32]:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a numeric array; got {type(value).__name__}") from err
    if array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D; got shape {array.shape}")
    check_finite(array, name)
    return array


def logit_effects(
    direction: Any,
    unembedding: Any,
    top: int = 10,
    *,
    norm_weight: Any = None,
) -> LogitEffects:
    """Top promoted and suppressed tokens of ``direction @ W_U``.

    direction: (d,) a decoder row (any scale; effects scale with it).
    unembedding: (vocab, d) the output embedding as torch stores it (``lm_head.weight``):
        the logit of token t is ``unembedding[t] @ h``.
    top: how many tokens on each side.
    norm_weight: (d,) the final norm's elementwise scale, multiplied into the direction
        first (its per-token division by the RMS is not: that is not a property of the unit).
    """
    vector = _as_matrix(direction, "direction", 1)
    matrix = _as_matrix(unembedding, "unembedding", 2)
    if matrix.shape[1] != vector.shape[0]:
        raise ValueError(
            f"unembedding must have shape (vocab, d={vector.shape[0]}); got {matrix.shape}"
        )
    if norm_weight is not None:
        scale = _as_matrix(norm_weight, "norm_weight", 1)
        if scale.shape != vector.shape:
            raise ValueError(f"norm_weight must have shape {vector.shape}; got {scale.shape}")
        vector = vector * scale
    top = min(check_positive_int(top, "top"), matrix.shape[0])
    effects = matrix @ vector  # (vocab,)
    up = np.argpartition(-effects, top - 1)[:top]
    up = up[np.argsort(-effects[up], kind="stable")]
    down = np.argpartition(effects, top - 1)[:top]
    down = down[np.argsort(effects[down], kind="stable")]
    return LogitEffects(
        promoted_ids=up.astype(np.int64),
        promoted_values=effects[up].astype(np.float32),
        suppressed_ids=down.astype(np.int64),
        suppressed_values=effects[down].astype(np.float32),
    )
