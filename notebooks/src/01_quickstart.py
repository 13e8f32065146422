"""Source of notebooks/01_quickstart.ipynb (build with notebooks/_build.py)."""

# %% [markdown]
# # Quickstart: a sparse autoencoder on handwritten digits
#
# A **sparse autoencoder** (SAE) rewrites each input as a short sum of learned directions. We
# call each direction a **unit**. Because only a few units fire on any one input, each unit
# tends to stand for one recognisable thing, and we can look at it.
#
# In a few minutes on a CPU you will:
#
# 1. load scikit-learn's 8x8 digits (1,797 images, 64 pixels each);
# 2. train the classic SAE, a ReLU with an L1 penalty, and watch it learn;
# 3. train a TopK SAE, which fixes the number of active units directly, and compare;
# 4. explore the TopK units in a linked dashboard, and find units for strokes, loops and digit
#   parts.
#
# Run the cells from top to bottom (Run > Run All Cells works).

# %%
import os

import numpy as np
from IPython.display import display

import sae_widgets as sw

# The test suite sets SAE_WIDGETS_FAST=1 to run this notebook in seconds; the tutorial
# itself trains for longer and learns cleaner units.
FAST = os.environ.get("SAE_WIDGETS_FAST") == "1"
EPOCHS = 3 if FAST else 30

# %% [markdown]
# ## The data
#
# `sw.datasets.digits()` returns a `sw.Dataset`: `X` holds the vectors the SAE sees (pixels
# scaled to [0, 1]), `labels` the digit, `images` how to draw a sample, and `attributes` the
# transformations a probe can apply (rotation, shifts, scale, stroke thickness).

# %%
ds = sw.datasets.digits()
print(f"{len(ds)} samples of {ds.X.shape[1]} pixels; labels {ds.label_names}")
print("attributes a probe can vary:", ", ".join(ds.attributes))

# %% [markdown]
# ## 1. The classic SAE: ReLU with an L1 penalty
#
# The encoder is a linear map followed by a ReLU; the loss is the reconstruction error plus
# `l1_coeff` times the sum of the unit activations. The L1 term pushes activations to zero,
# which makes the codes sparse, but it also shrinks the activations that stay on, so
# reconstructions come out a little too faint.
#
# The `TrainingMonitor` draws the curves while the SAE trains in the background:
#
# - **loss**: what the optimiser minimises;
# - **FVU** (fraction of variance unexplained): reconstruction error over the data's variance, 0
#   is perfect, 1 is no better than predicting the mean image;
# - **L0**: how many units fire per sample on average (the sparsity);
# - **dead fraction**: units that have not fired for a while; dead units are wasted capacity.
#
# The Stop button ends training early and keeps what was learned.

# %%
relu_sae = sw.SAE(
    n_units=128, activation="relu", l1_coeff=1.0, epochs=EPOCHS, batch_size=256, seed=0
)
relu_monitor = sw.TrainingMonitor(relu_sae)
relu_monitor.fit(ds)  # trains in a background thread; the monitor below updates live
display(relu_monitor)

# %% [markdown]
# `join()` waits for the training to finish, then we measure the result on all digits.

# %%
relu_monitor.join()
sw.metrics.evaluate(relu_sae, ds.X)

# %% [markdown]
# ## 2. TopK: choose the sparsity directly
#
# A TopK SAE keeps the `k` largest pre-activations of each sample and zeroes the rest. There is
# no L1 penalty to tune and no shrinkage: L0 is exactly `k`, and the kept activations are free
# to take their full size. At a similar L0, TopK usually reconstructs better (lower FVU) than
# ReLU with L1, and it is the kind of SAE most recent work trains.

# %%
topk_sae = sw.SAE(n_units=128, activation="topk", k=8, epochs=EPOCHS, batch_size=256, seed=0)
topk_monitor = sw.TrainingMonitor(topk_sae)
topk_monitor.fit(ds)
display(topk_monitor)

# %%
topk_monitor.join()
for name, sae in [("relu + L1", relu_sae), ("topk", topk_sae)]:
    scores = sw.metrics.evaluate(sae, ds.X)
    print(
        f"{name:>9}: FVU {scores['fvu']:.3f}   L0 {scores['l0']:5.1f}   "
        f"dead {scores['dead_fraction']:.0%}"
    )

# %% [markdown]
# ## 3. Explore the units
#
# `sw.Explorer(sae, ds)` encodes the dataset once and answers every question the views ask.
# `ex.dashboard()` shows all views, linked through one shared selection:
#
# - **the status line** says how many samples are selected and which unit is focused;
# - **PCA view** (top left): every digit placed by the first two principal components of its
#   unit codes, coloured by label. Draw a lasso around a group of points to select them (each new
#   lasso replaces the selection; "clear" empties it); the buttons below it list the units most
#   *enriched* in your selection (firing there much more than elsewhere);
# - **activation heatmap** (top right): samples (rows, following your selection) by units
#   (columns, most enriched first); click a column to focus that unit, or the coloured strip to
#   see one sample, its reconstruction and its most active units;
# - **unit inspector** (middle): the focused unit. Its *decoder direction* is what the unit
#   adds to a reconstruction, drawn as an 8x8 picture beside its encoder filter; then its
#   activation histogram, the digits that activate it most, which labels it fires on, and its
#   nearest and co-firing units (click one to focus it);
# - **probe slider** (bottom): pick a sample and an attribute such as rotation; the slider
#   transforms the digit and plots how the most sensitive units respond.
#
# **What to look for.** Units on digits come in a few kinds, and the inspector tells them apart:
#
# - **strokes**: a decoder picture with one bright bar, such as the vertical stroke of a 1 or a
#   4, or the top bar of a 7 or a 5. Such a unit fires on several labels that share the stroke;
# - **loops**: a ring or half ring, firing on 0, 6, 8 and 9, with its top samples all closed
#   shapes;
# - **digit parts**: the hook at the top of a 2 or a 3, the crossing of a 4, the tail of a 9.
#   Label selectivity shows whether a unit is a whole-digit detector (almost all its firing on
#   one label) or a part that digits share;
# - **dead or dense units**: one that never fires, or one that fires on nearly everything and
#   mostly encodes average brightness.
#
# Try it: lasso the cluster of zeros in the PCA plot, click the top enriched unit, and check in
# the inspector whether its decoder picture is a loop.

# %%
ex = sw.Explorer(topk_sae, ds)
ex.dashboard()

# %% [markdown]
# ## 4. Drive the views from Python
#
# The selection is plain Python state: setting it updates every view above. Here we ask, for
# each digit, which unit is most enriched on that digit, and how many of that unit's firings
# fall on it (its precision). A unit with high precision is a digit detector; a lower one is a
# part shared by several digits.

# %%
for digit in range(10):
    samples = np.flatnonzero(ds.labels == digit)
    unit = int(ex.enrichment(samples, top=1).units[0])
    summary = ex.unit_summary(unit)
    print(
        f"digit {digit}: unit {unit:3d} fires on {summary.frequency:5.1%} of all digits, "
        f"{summary.top_label_precision:5.1%} of them {ds.label_names[summary.top_label]}s"
    )

# %% [markdown]
# Select every zero, focus the unit most enriched on zeros, and pick the first zero for the
# sample card and the probe: scroll up and the dashboard shows them (the status line, the
# heatmap rows, the inspector, the sample card and the probe slider all follow).

# %%
zeros = np.flatnonzero(ds.labels == 0)
ex.selection.samples = zeros
ex.selection.unit = int(ex.enrichment(zeros, top=1).units[0])
ex.selection.probe_sample = int(zeros[0])
print(f"{len(ex.selection.samples)} samples selected, unit {ex.selection.unit} focused")

# %% [markdown]
# ## Where next
#
# - `02_probing_attributes.ipynb`: units that encode position, scale, rotation and shape, found
#   with the probe slider;
# - `03_model_activations.ipynb`: an SAE on the hidden layer of a small classifier;
# - `04_ground_truth.ipynb`: synthetic data with known features, to measure how many each kind
#   of SAE recovers.
#
# Save a trained SAE with `topk_sae.save("runs/digits")` and load it back with
# `sw.SAE.load("runs/digits")`.
