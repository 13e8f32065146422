"""What an Explorer answers about a Matryoshka SAE's nested prefixes: FVU, MSE and L0 using
only the first n units, and reconstructions from them.

A mixin of `Explorer` (it reads the Explorer's SAE, codes and decoder), kept apart so each
module holds one concept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from sae_widgets.analysis.prefix import PrefixMetrics, prefix_metrics, prefix_reconstruction
from sae_widgets.data.dataset import sample_rows

if TYPE_CHECKING:  # pragma: no cover
    from sae_widgets.analysis import CodeStore
    from sae_widgets.data.dataset import Dataset

__all__ = ["PrefixQueries"]


class PrefixQueries:
    """Nested-prefix answers of `Explorer` (see the module docstring)."""

    if TYPE_CHECKING:  # provided by Explorer
        sae: Any
        dataset: Dataset
        n_samples: int
        n_units: int

        @property
        def codes(self) -> CodeStore: ...

        def _components(self) -> NDArray[np.float32]: ...

        def _check_units(self) -> None: ...

    @property
    def prefix_sizes(self) -> tuple[int, ...] | None:
        """The SAE's nested prefix sizes (a Matryoshka SAE), else None."""
        sizes = getattr(self.sae, "prefix_sizes_", None)
        return tuple(int(n) for n in sizes) if sizes is not None else None

    def _decoder_bias(self) -> NDArray[np.float32]:
        """(d,) the reconstruction of all-zero codes: the decoder bias."""
        self._check_units()  # zeros of the Explorer's width must fit the SAE
        zeros = np.zeros((1, self.n_units), dtype=np.float32)
        return np.asarray(self.sae.inverse_transform(zeros), dtype=np.float32)[0]

    def prefix_metrics(self, sizes: Any = None) -> PrefixMetrics:
        """FVU, MSE and L0 over the dataset using only the first n units, for each n in
        `sizes` (default: the SAE's prefix sizes, else n_units / 8, / 4, / 2 and all)."""
        if sizes is None:
            sizes = self.prefix_sizes or sorted({max(1, self.n_units >> j) for j in range(4)})
        return prefix_metrics(
            self.dataset.X, self.codes.csr, self._components(), self._decoder_bias(), sizes
        )

    def reconstruct_prefix(self, indices: Any, n_units: int) -> NDArray[np.float32]:
        """(len(indices), d) reconstruction of those samples from their first `n_units`
        units only (`reconstruct` with every unit)."""
        rows = sample_rows(indices, self.n_samples, "indices", allow_empty=True)
        return prefix_reconstruction(
            self.codes.csr[rows], self._components(), self._decoder_bias(), n_units
        )
