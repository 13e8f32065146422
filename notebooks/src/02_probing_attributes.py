"""Source of notebooks/02_probing_attributes.ipynb (build with notebooks/_build.py)."""

# %% [markdown]
# # 02 · Probing attributes: which units encode position, scale, rotation and shape?
#
# The *shapes* dataset draws one white shape on a black 32×32 canvas from five known
# generative **factors**: `shape` (square, ellipse, triangle, heart), `scale`, `rotation`,
# `x` and `y`. Because we know the factors, we can ask of every SAE unit: *which factor
# moves it?*
#
# We answer in two complementary ways:
#
# 1. **Observation**: correlate each unit's activation with each factor over the dataset
#    (a factor × unit table).
# 2. **Intervention**: take one image, change one factor while keeping the others fixed,
#    and watch which units respond (the `ProbeSlider`, and `Explorer.probe` for the numbers).
#
# Finally we brush a region of the PCA map of the codes and look at what the brush selected.

# %%
import itertools
import os

import ipywidgets as widgets
import numpy as np
from bqplot import (
    Axis,
    ColorScale,
    Figure,
    GridHeatMap,
    LinearScale,
    Lines,
    OrdinalScale,
)
from IPython.display import HTML, display
from scipy.stats import rankdata

import sae_widgets as sw

# The test suite sets SAE_WIDGETS_FAST=1 to run every notebook quickly on less data.
# Leave it unset for the real tutorial (a few minutes on a laptop CPU).
FAST = os.environ.get("SAE_WIDGETS_FAST") == "1"
N_SAMPLES = 2_000 if FAST else 20_000
EPOCHS = 2 if FAST else 10
N_PROBE_SAMPLES = 16 if FAST else 64  # samples averaged when ranking units by probe response


# %% [markdown]
# ## The data
#
# Every factor is drawn uniformly and independently. `ds.factors` holds them (one array per
# factor), `ds.labels` is the shape, and `ds.attributes` holds one *attribute* per factor:
# an attribute redraws a sample with that one factor set to a new value. That is what the
# probe will vary.

# %%
ds = sw.datasets.shapes(n=N_SAMPLES, size=32, seed=0)
print(ds)
for name, values in ds.factors.items():
    print(f"  {name:>8}: {values.min():7.2f} .. {values.max():7.2f}")
sw.image_grid(ds.images[:36], n_cols=18, zoom=2)

# %% [markdown]
# ## A TopK SAE on the pixels
#
# A TopK SAE keeps exactly `k` units active per image, so each image is explained by a
# handful of units. With 128 units and `k = 8` it reconstructs the images well; the printout
# gives the fraction of variance unexplained (FVU, lower is better) and the average number
# of active units (L0).

# %%
sae = sw.SAE(n_units=128, activation="topk", k=8, epochs=EPOCHS, batch_size=256, seed=0)
sae.fit(ds)
sw.metrics.evaluate(sae, ds.X)

# %% [markdown]
# ## Observation: a factor × unit correlation table
#
# For each factor and each unit we compute the **Spearman** rank correlation between the
# factor and the unit's activation over all images. Ranks make it robust to the skewed,
# mostly-zero activations of a sparse code. The categorical `shape` factor becomes one 0/1
# column per shape ("is it a heart?").
#
# The table keeps the three units with the largest |ρ| for each factor. What to look for:
#
# * **x** and **y** give the strongest correlations: units with large positive or negative
#   ρ are *position* units. A pixel SAE learns templates at particular places, so position
#   is what its units encode first.
# * **scale** is weaker, and often negative: units that fire for small shapes (a big shape
#   covers several templates at once and is explained by other units).
# * **shape** and **rotation** are weak, and that is a finding, not a bug. A unit is a
#   template at one place, so which shape is present gets split over many position-specific
#   units and no single one correlates strongly. Rotation is circular (359° is next to 1°)
#   and the shapes are symmetric (a square looks the same every 90°), so no unit can rise
#   monotonically with the angle anyway. The probe below handles both better.

# %%
codes = sae.transform(ds.X)  # (n_samples, n_units) dense activations
shape_names = ds.label_names
factor_columns = {
    f"is {name}": (ds.labels == i).astype(float) for i, name in enumerate(shape_names)
}
factor_columns.update({name: ds.factors[name] for name in ("scale", "rotation", "x", "y")})


def spearman(columns_NF, codes_NU):
    """(F, U) Spearman correlation of every column with every unit (0 for silent units)."""
    ranks_f = rankdata(columns_NF, axis=0)
    ranks_u = rankdata(codes_NU, axis=0)
    ranks_f = (ranks_f - ranks_f.mean(0)) / (ranks_f.std(0) + 1e-12)
    ranks_u = (ranks_u - ranks_u.mean(0)) / (ranks_u.std(0) + 1e-12)
    return ranks_f.T @ ranks_u / len(codes_NU)


factor_names = list(factor_columns)
rho = spearman(np.column_stack(list(factor_columns.values())), codes)
top_per_factor = {f: np.argsort(-np.abs(rho[i]))[:3] for i, f in enumerate(factor_names)}
table_units = list(dict.fromkeys(int(u) for units in top_per_factor.values() for u in units))

row_scale, column_scale = OrdinalScale(), OrdinalScale()
color_scale = ColorScale(scheme="RdBu", min=-1, max=1)
grid = GridHeatMap(
    row=factor_names,
    column=[f"u{u}" for u in table_units],
    color=rho[:, table_units],
    scales={"row": row_scale, "column": column_scale, "color": color_scale},
    display_format=".2f",
    font_style={"font-size": "10px"},
)
Figure(
    marks=[grid],
    axes=[
        Axis(scale=column_scale, label="unit"),
        Axis(scale=row_scale, orientation="vertical"),
    ],
    title="Spearman ρ of each factor with its most correlated units (blue +, red −)",
    fig_margin={"top": 50, "bottom": 50, "left": 90, "right": 20},
    layout={"width": "100%", "height": "360px"},
)

# %% [markdown]
# The same information as a ranking: for each factor, the units that co-vary with it most.

# %%
rows = "".join(
    f"<tr><td><b>{f}</b></td>"
    + "".join(f"<td>unit {u} (ρ = {rho[i, u]:+.2f})</td>" for u in top_per_factor[f])
    + "</tr>"
    for i, f in enumerate(factor_names)
)
HTML(f"<table><tr><th>factor</th><th colspan=3>most correlated units</th></tr>{rows}</table>")

# %% [markdown]
# ## Intervention: the probe slider
#
# Correlation mixes everything that happens to co-occur. The probe *changes one factor of
# one image* and re-encodes it. The `ProbeSlider` shows the varied image, the SAE's
# reconstruction of it, the response curves of the units most sensitive to that factor, and
# the activations at the slider's value. Pick the factor in the *attribute* menu and drag
# the slider; *average over selection* averages the curves over the selected images.
#
# What to look for: for **x** and **y**, a relay of units, each active over one band of
# positions (a place code); for **scale**, units that take over from one another as the
# shape grows; for **shape** and **rotation**, smaller responses that switch units on and
# off as the outline changes under a fixed position.

# %%
ex = sw.Explorer(sae, ds)  # the SAE over the dataset, with the selection all views share
ex.selection.probe_sample = 0
sw.ProbeSlider(ex, attribute="x")

# %% [markdown]
# ### Ranking units by their response
#
# `ex.probe(samples, attribute)` does the same sweep in code: it varies the attribute of
# each sample over the attribute's grid, encodes everything in one batch and returns the
# mean response curve of every unit. A unit's *sensitivity* is how far its mean curve
# moves (max − min). Ranking by sensitivity answers "which units encode rotation?" without
# the symmetry problem that hid rotation from the correlation table.

# %%
rng = np.random.default_rng(0)
probe_samples = rng.choice(len(ds), size=N_PROBE_SAMPLES, replace=False)
probes = {name: ex.probe(probe_samples, name) for name in ds.attributes}
rows = "".join(
    f"<tr><td><b>{name}</b></td>"
    + "".join(f"<td>unit {u} ({result.sensitivity[u]:.2f})</td>" for u in result.ranked_units[:4])
    + "</tr>"
    for name, result in probes.items()
)
HTML(
    "<table><tr><th>attribute</th><th colspan=4>most sensitive units (mean response range)"
    f"</th></tr>{rows}</table>"
)

# %% [markdown]
# Compare the sensitivities across rows: moving a shape sideways changes the code far more
# than turning it or changing its outline does. The units that lead several rows are
# generic "there is ink here" units; the ones that appear in one row only are specific.
#
# Here are the mean response curves of the four most sensitive units for the horizontal
# position `x`. Position units typically tile the axis: each one peaks in its own band.

# %%
result = probes["x"]
x_scale, y_scale = LinearScale(), LinearScale()
curves = Lines(
    x=result.values,
    y=result.response[:, result.ranked_units[:4]].T,
    labels=[f"unit {u}" for u in result.ranked_units[:4]],
    display_legend=True,
    marker="circle",
    scales={"x": x_scale, "y": y_scale},
)
Figure(
    marks=[curves],
    axes=[
        Axis(scale=x_scale, label="x (left → right)"),
        Axis(scale=y_scale, orientation="vertical", label="mean activation"),
    ],
    title=f"Response to x, averaged over {len(result.samples)} images",
    layout={"width": "100%", "height": "320px"},
)

# %% [markdown]
# ## A PCA brush on one region
#
# `PCABrush` draws the 2-D PCA of the unit codes. Draw a lasso on it to select samples;
# every other view follows. Here we select a region from code instead, so the notebook is
# reproducible: the 10 % of images furthest along the first principal component. The
# brush's status line and its list of enriched units update when the selection changes.

# %%
brush = sw.PCABrush(ex)
coords = ex.projection().coords
x_low = float(np.quantile(coords[:, 0], 0.9))
chosen = ex.samples_in_rect((x_low, float(coords[:, 0].max())), (-np.inf, np.inf))
ex.selection.samples = chosen
print(f"selected {len(ex.selection.samples)} of {len(ds)} images")
display(brush)

# %% [markdown]
# **What did the brush select?** Compare the distribution of each factor inside the
# selection (orange) with the whole dataset (blue). A factor whose curves differ is what
# that region of the code space is about; a factor whose curves match is irrelevant to it.
# The printout ranks the factors by how far their distribution moved.

# %%
selected = np.asarray(ex.selection.samples)
# bins over each factor's full range; shape is categorical: one bin per shape
FACTOR_BINS = {
    "shape": (np.arange(len(shape_names) + 1) - 0.5, list(shape_names)),
    "scale": (np.linspace(0.5, 1.0, 6), None),
    "rotation": (np.linspace(0.0, 360.0, 5), None),
    "x": (np.linspace(0.0, 1.0, 6), None),
    "y": (np.linspace(0.0, 1.0, 6), None),
}


def share(values, bins):
    counts, _ = np.histogram(values, bins=bins)
    return counts / max(counts.sum(), 1)


def factor_figure(name, values, bins, labels):
    """Share of images per bin: the whole dataset (blue) against the selection (orange)."""
    x_scale, y_scale = OrdinalScale(), LinearScale(min=0)
    lines = Lines(
        x=labels,
        y=[share(values, bins), share(values[selected], bins)],
        colors=["#1f77b4", "#ff7f0e"],
        labels=["all", "selection"],
        marker="circle",
        stroke_width=2.5,
        scales={"x": x_scale, "y": y_scale},
    )
    return Figure(
        marks=[lines],
        axes=[Axis(scale=x_scale), Axis(scale=y_scale, orientation="vertical", tick_format=".0%")],
        title=name,
        layout={"width": "330px", "height": "240px"},
        fig_margin={"top": 40, "bottom": 30, "left": 50, "right": 20},
    )


figures, shifts = [], {}
for name, (bins, labels) in FACTOR_BINS.items():
    values = ds.labels if name == "shape" else ds.factors[name]
    if labels is None:
        labels = [f"{a:g}–{b:g}" for a, b in itertools.pairwise(np.round(bins, 2))]
    figures.append(factor_figure(name, values, bins, labels))
    # total variation distance: 0 when the selection looks like the dataset, 1 when disjoint
    shifts[name] = 0.5 * np.abs(share(values[selected], bins) - share(values, bins)).sum()
display(widgets.GridBox(figures, layout=widgets.Layout(grid_template_columns="repeat(3, 340px)")))
print("how far each factor's distribution moved (0: not at all, 1: completely):")
for name, distance in sorted(shifts.items(), key=lambda item: -item[1]):
    print(f"  {name:>8}: {distance:.2f}")

# %% [markdown]
# The units most **enriched** in the selection (they fire far more often inside it than
# outside) are the ones that define the region. Compare them with the correlation table and
# the probe ranking above: they should be the units of the factor whose curves moved most.

# %%
enriched = ex.enrichment(top=6)
rows = "".join(
    f"<tr><td>unit {u}</td><td>{inside:.0%}</td><td>{outside:.0%}</td></tr>"
    for u, inside, outside in zip(enriched.units, enriched.rate_inside, enriched.rate_outside)
)
HTML(f"<table><tr><th>unit</th><th>fires inside</th><th>fires outside</th></tr>{rows}</table>")

# %% [markdown]
# Top images of the most enriched unit (what it "looks for"). Notice where in the frame the
# shapes sit, and how little their outline matters.

# %%
unit = int(enriched.units[0])
summary = ex.unit_summary(unit)
display(HTML(f"<b>unit {unit}</b>: fires on {summary.frequency:.1%} of the images"))
sw.image_grid(ds.images[summary.top_samples[:24]], n_cols=12, zoom=2)

# %% [markdown]
# ## Everything together
#
# The dashboard lays out all views, linked through `ex.selection`: brush the PCA plot, click
# a unit in the heatmap, then probe it. Setting `ex.selection.unit` from code works too.

# %%
ex.selection.unit = unit
ex.dashboard()
