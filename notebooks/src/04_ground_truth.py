"""Source of notebooks/04_ground_truth.ipynb (build with notebooks/_build.py)."""

# %% [markdown]
# # 04 · Ground truth: do SAEs recover the true features?
#
# On real data nobody knows the "true" features, so we judge SAEs by proxies. Synthetic
# **superposition** data removes the guesswork: each sample is a sparse, non-negative mix of
# known unit-norm directions (`ds.true_features`), with more directions than dimensions.
# We can then ask directly how many of those directions an SAE's decoder found.
#
# We compare the four activations at (nearly) the same sparsity **L0** (active units per
# sample):
#
# * `relu`: ReLU with an L1 penalty (the classic SAE); L0 is set indirectly by `l1_coeff`;
# * `topk`: exactly `k` units per sample;
# * `batchtopk`: `k` units per sample *on average* over a batch (a threshold at inference);
# * `jumprelu`: learned per-unit thresholds with an L0 penalty `l0_coeff`.
#
# Metrics, all from `sw.metrics`:
#
# * **FVU**: fraction of variance unexplained (reconstruction; lower is better);
# * **MMCS**: mean over true features of the max |cosine| to any decoder direction;
# * **MCC**: the same mean under the best *one-to-one* matching of features to units
#   (a unit cannot take credit for two features);
# * **uniqueness**: among units that match some feature (|cos| ≥ 0.9), the share that
#   match a feature no other unit matches (1: no duplicates).

# %%
import os

import ipywidgets as widgets
import numpy as np
from bqplot import Axis, Bars, Figure, LinearScale, Lines, Scatter
from IPython.display import HTML, display

import sae_widgets as sw

# The test suite sets SAE_WIDGETS_FAST=1 to run every notebook quickly on less data.
# Leave it unset for the real tutorial (a few minutes on a laptop CPU).
FAST = os.environ.get("SAE_WIDGETS_FAST") == "1"
N_SAMPLES = 4_000 if FAST else 30_000
N_FEATURES = 64 if FAST else 256  # true features ...
DIM = 32 if FAST else 128  # ... packed into this many dimensions
ACTIVE = 4  # true features active per sample, on average: the L0 to match
EPOCHS = 3 if FAST else 8
MATCH = 0.9  # |cosine| at which we call a true feature recovered

# %% [markdown]
# ## The data
#
# `true_features` are random unit vectors: twice as many as dimensions, so they cannot be
# orthogonal (that is superposition). Each sample fires about `ACTIVE` of them with random
# strengths in (0, 1); `ds.true_codes` keeps those coefficients.

# %%
ds = sw.datasets.superposition(n=N_SAMPLES, n_features=N_FEATURES, dim=DIM, active=ACTIVE, seed=0)
print(ds)
F = ds.true_features
overlap = np.abs(F @ F.T - np.eye(len(F)))
print(f"true features active per sample: {ds.true_codes.getnnz(axis=1).mean():.2f}")
print(f"largest |cosine| between two true features: {overlap.max():.2f}")

# %% [markdown]
# ## Training at matched L0
#
# TopK and BatchTopK take the target L0 directly (`k`). ReLU and JumpReLU do not: their
# L0 follows from a penalty coefficient (`l1_coeff`, `l0_coeff`), so we search for it. We
# train at a low and a high coefficient, then bisect between them (in log space) towards
# L0 = `ACTIVE`. Every SAE trained along the way is kept: together with a few other `k`
# for TopK and BatchTopK they trace each activation's trade-off between sparsity and
# reconstruction, which we plot next. Every SAE has as many units as there are true
# features.

# %%
BISECTION_ROUNDS = 1 if FAST else 4
runs = []  # one dict per trained SAE: its settings and metrics


def train(activation, **params):
    """Fit one SAE on the whole dataset, score it, and keep it in `runs`."""
    sae = sw.SAE(
        n_units=N_FEATURES, activation=activation, epochs=EPOCHS, batch_size=512, seed=0, **params
    )
    sae.fit(ds, progress=False)
    run = {
        "activation": activation,
        "setting": ", ".join(f"{name}={value:.3g}" for name, value in params.items()),
        "sae": sae,
        **sw.metrics.evaluate(sae, ds.X),
        "mmcs": sw.metrics.mmcs(sae, F),
        "mcc": sw.metrics.mcc(sae, F),
        "uniqueness": sw.metrics.uniqueness(sae, F, threshold=MATCH),
    }
    runs.append(run)
    progress.value += 1
    return run


def match_l0(activation, param, low, high, **params):
    """Bisect a sparsity coefficient in log space so that L0 lands near ACTIVE."""
    for value in (low, high):
        train(activation, **{param: value}, **params)
    for _ in range(BISECTION_ROUNDS):
        middle = float(np.sqrt(low * high))
        if train(activation, **{param: middle}, **params)["l0"] > ACTIVE:
            low = middle  # still too dense: a stronger penalty is needed
        else:
            high = middle


ACTIVATIONS = ["relu", "topk", "batchtopk", "jumprelu"]
K_VALUES = [2, 4] if FAST else [2, 3, 4, 6, 8]
BATCH_K_VALUES = [ACTIVE] if FAST else [2, ACTIVE, 8]
progress = widgets.IntProgress(
    max=len(K_VALUES) + len(BATCH_K_VALUES) + 2 * (2 + BISECTION_ROUNDS), description="SAEs trained"
)
display(progress)
for k in K_VALUES:
    train("topk", k=k)
for k in BATCH_K_VALUES:
    train("batchtopk", k=k)
match_l0("relu", "l1_coeff", 0.3, 10.0)
match_l0("jumprelu", "l0_coeff", 3e-4, 0.1, k=ACTIVE)
print(f"trained {len(runs)} SAEs")

# %% [markdown]
# For each activation, the run whose L0 is nearest the target:

# %%
matched = {}
for activation in ACTIVATIONS:
    candidates = [r for r in runs if r["activation"] == activation]
    matched[activation] = min(candidates, key=lambda r: abs(r["l0"] - ACTIVE))


def best_cosines(sae):
    """(n_true_features,) max |cosine| of each true feature to a decoder direction."""
    D = sae.components_ / np.linalg.norm(sae.components_, axis=1, keepdims=True)
    return np.abs(F @ D.T).max(axis=1)


header = ["activation", "setting", "L0", "FVU", "dead", "MMCS", "MCC", "uniqueness", "recovered"]
rows = []
for activation, r in matched.items():
    recovered = (best_cosines(r["sae"]) >= MATCH).mean()
    cells = [
        activation,
        r["setting"],
        f"{r['l0']:.2f}",
        f"{r['fvu']:.3f}",
        f"{r['dead_fraction']:.0%}",
        f"{r['mmcs']:.3f}",
        f"{r['mcc']:.3f}",
        "–" if np.isnan(r["uniqueness"]) else f"{r['uniqueness']:.2f}",
        f"{recovered:.0%}",
    ]
    rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
HTML(
    f"<p>Target L0 = {ACTIVE}; <i>recovered</i> = share of true features with a decoder "
    f"direction at |cos| ≥ {MATCH}; uniqueness – : no unit matches any feature.</p><table><tr>"
    + "".join(f"<th>{h}</th>" for h in header)
    + "</tr>"
    + "".join(rows)
    + "</table>"
)

# %% [markdown]
# How to read it: compare FVU only between rows whose L0 is close, since more active units
# always reconstruct better. MMCS and MCC near 1 mean the decoder found the true directions;
# a high FVU with a high MCC can still happen (the right directions with poorly estimated
# magnitudes), and a low FVU with a low MCC is the failure SAEs are notorious for (good
# reconstructions from directions that mix several true features).
#
# ReLU usually has the highest FVU at a given L0: the L1 penalty pulls every activation
# towards zero (*shrinkage*), so even the right units reconstruct too little. Its L0 also
# falls off a cliff as `l1_coeff` grows (units die), which is why the bisection may stop a
# little off the target.
#
# ## FVU against L0
#
# Every trained SAE is one point; lines join the runs of one activation. Better is down
# and to the left. The vertical dashed line marks the true L0; the large circles are the
# matched runs of the table. The axis stops at four times the target: the weakest penalties
# of the ReLU and JumpReLU searches give much denser codes, off to the right.

# %%
colors = {"relu": "#d62728", "topk": "#1f77b4", "batchtopk": "#2ca02c", "jumprelu": "#9467bd"}
# the interesting region is near the target: runs with weak penalties lie off to the right
l0_scale, fvu_scale = LinearScale(min=0, max=4 * ACTIVE), LinearScale(min=0)
scales = {"x": l0_scale, "y": fvu_scale}
marks = []
for activation in ACTIVATIONS:
    points = sorted((r["l0"], r["fvu"]) for r in runs if r["activation"] == activation)
    l0s, fvus = np.array(points).T
    marks.append(
        Lines(
            x=l0s,
            y=fvus,
            colors=[colors[activation]],
            marker="circle",
            labels=[activation],
            display_legend=True,
            scales=scales,
        )
    )
marks.append(
    Scatter(
        x=[r["l0"] for r in matched.values()],
        y=[r["fvu"] for r in matched.values()],
        colors=[colors[a] for a in matched],
        default_size=200,
        fill=False,
        stroke_width=2,
        scales=scales,
    )
)
fvu_top = max(r["fvu"] for r in runs)
marks.append(
    Lines(x=[ACTIVE, ACTIVE], y=[0, fvu_top], line_style="dashed", colors=["gray"], scales=scales)
)
Figure(
    marks=marks,
    axes=[
        Axis(scale=l0_scale, label="L0 (active units per sample)"),
        Axis(scale=fvu_scale, orientation="vertical", label="FVU", tick_format=".2f"),
    ],
    title="Reconstruction against sparsity",
    legend_location="top-right",
    layout={"width": "100%", "height": "380px"},
)

# %% [markdown]
# ## Which true features did each SAE recover?
#
# For every true feature, its best-matching decoder direction's |cosine|. A histogram piled
# up near 1 means the SAE found nearly every feature; a spread-out histogram means its units
# are blends. The dashed threshold is where we call a feature recovered.

# %%
bins = np.linspace(0, 1, 21)
centers = (bins[:-1] + bins[1:]) / 2
cosines = {a: best_cosines(r["sae"]) for a, r in matched.items()}
figures = []
for activation, values in cosines.items():
    counts, _ = np.histogram(values, bins=bins)
    x_scale, y_scale = LinearScale(min=0, max=1), LinearScale(min=0)
    figures.append(
        Figure(
            marks=[
                Bars(
                    x=centers,
                    y=counts,
                    colors=[colors[activation]],
                    padding=0.1,
                    scales={"x": x_scale, "y": y_scale},
                ),
                Lines(
                    x=[MATCH, MATCH],
                    y=[0, counts.max()],
                    line_style="dashed",
                    colors=["gray"],
                    scales={"x": x_scale, "y": y_scale},
                ),
            ],
            axes=[
                Axis(scale=x_scale, label="best |cosine| to a unit"),
                Axis(scale=y_scale, orientation="vertical", label="true features"),
            ],
            title=f"{activation}: {(values >= MATCH).mean():.0%} recovered",
            layout={"width": "340px", "height": "260px"},
            fig_margin={"top": 40, "bottom": 45, "left": 50, "right": 10},
        )
    )
widgets.GridBox(figures, layout=widgets.Layout(grid_template_columns="repeat(2, 350px)"))

# %% [markdown]
# Do the activations find the *same* features? Count, for each subset of activations, the
# true features recovered by exactly that subset. Features found by all four are the easy
# ones; the rows below show what one activation finds that the others miss.

# %%
recovered = {a: values >= MATCH for a, values in cosines.items()}
names = list(recovered)
pattern = np.stack([recovered[a] for a in names], axis=1)  # (features, activations)
combos, counts = np.unique(pattern, axis=0, return_counts=True)
order = np.argsort(-counts)
rows = "".join(
    "<tr><td>"
    + (", ".join(n for n, hit in zip(names, combos[i]) if hit) or "<i>none</i>")
    + f"</td><td>{counts[i]}</td></tr>"
    for i in order
)
HTML(f"<table><tr><th>recovered by</th><th>true features</th></tr>{rows}</table>")

# %% [markdown]
# ## Probing a true feature
#
# Superposition datasets have one attribute per true feature: `feature_<j>` sets feature
# j's coefficient in a sample. Probing it shows whether one unit tracks that feature alone.
# Below we take the TopK SAE, pick the true feature it matches most closely, and open a
# `ProbeSlider` on it for a sample that contains that feature. As the coefficient grows from
# 0, the matching unit should switch on and then rise in a straight line, while the units
# of the sample's other features stay roughly put.

# %%
sae = matched["topk"]["sae"]
ex = sw.Explorer(sae, ds)
feature = int(np.argmax(cosines["topk"]))
D = sae.components_ / np.linalg.norm(sae.components_, axis=1, keepdims=True)
unit = int(np.argmax(np.abs(D @ F[feature])))
print(f"true feature {feature} is matched by unit {unit} (|cos| = {cosines['topk'][feature]:.3f})")
# a sample with this feature and as few others as possible, so its unit is easy to see
has_feature = np.flatnonzero(ds.true_codes[:, feature].toarray().ravel())
n_active = ds.true_codes[has_feature].getnnz(axis=1)
ex.selection.probe_sample = int(has_feature[np.argmin(n_active)])
ex.selection.unit = unit
sw.ProbeSlider(ex, attribute=f"feature_{feature}")

# %% [markdown]
# The same in numbers, averaged over 50 samples: the matched unit should be the most
# sensitive one by far.

# %%
probe = ex.probe(np.arange(50), f"feature_{feature}")  # any 50 samples, with or without it
print("most sensitive units:", probe.ranked_units[:5].tolist())
print(
    "their sensitivity:", ", ".join(f"{probe.sensitivity[u]:.3f}" for u in probe.ranked_units[:5])
)

# %% [markdown]
# ## Comparing two SAEs: what a narrower dictionary does with the features
#
# `sw.compare` matches the units of two SAEs trained on the same data by the cosine of their
# decoder directions, one to one (the Hungarian algorithm) and each unit to its nearest units
# on the other side, and sorts every unit, reading from SAE A to SAE B:
#
# * **shared**: its nearest unit on the other side has cosine ≥ the threshold, one to one;
# * **split**: one unit of A is the nearest of two or more units of B (A's unit became several);
# * **merge**: two or more units of A have the same nearest unit of B (they became one);
# * **new**: nothing on the other side reaches the threshold (a unit of B that A lacks).
#
# Here A is a TopK SAE with half as many units as there are true features (the narrow one)
# and B the TopK SAE of the table above, with one unit per true feature (the wide one), both
# at L0 = `ACTIVE`. A narrow dictionary cannot give every feature a unit of its own, so we
# expect some of its units to be blends of several features, which the wide one splits. On
# real data that reading is a guess; here the true features let us check it.
#
# The view below plots one point per Hungarian pair: x is the decoder cosine, y the log2 of
# how much more often the narrow unit fires than its partner. Click a point to focus that unit:
# underneath, its top-activating samples stand beside those of its best matches in the wide
# SAE (each sample drawn as a row of its largest input dimensions). A match's button focuses
# it in the wide SAE, and a second row shows that unit's best matches back in the narrow one.

# %%
SAME = 0.6  # cosine at which two units count as one direction (a blend of 2 features: ~0.7)
narrow = sw.SAE(
    n_units=N_FEATURES // 2, activation="topk", k=ACTIVE, epochs=EPOCHS, batch_size=512, seed=0
).fit(ds, progress=False)
wide = matched["topk"]["sae"]
comparison = sw.compare(narrow, wide, ds, threshold=SAME, names=("narrow", "wide"))
result = comparison.result
print(comparison.summary())
splits = np.flatnonzero(result.kind_a == "split")
# focus the first narrow unit that splits, and in the wide SAE its nearest unit
unit = int(splits[0]) if len(splits) else 0
comparison.selection.unit = unit
comparison.selection_b.unit = int(comparison.matches(unit).units[0])
sw.CompareView(comparison)

# %% [markdown]
# Now the check that only ground truth allows. For every unit, its best |cosine| to a true
# feature tells whether it *is* one (near 1) or a blend (lower). If a split means "the narrow
# unit was a blend of features the wide SAE separates", then the split narrow units should
# score low, and the wide units they split into should each match a *different* true feature.


# %%
def true_feature_of(sae):
    """Each unit's best-matching true feature and that |cosine|."""
    D = sae.components_ / np.linalg.norm(sae.components_, axis=1, keepdims=True)
    cos = np.abs(D @ F.T)
    return cos.argmax(axis=1), cos.max(axis=1)


feature_a, cos_a = true_feature_of(narrow)
feature_b, cos_b = true_feature_of(wide)
# the wide units each split narrow unit became: those whose nearest narrow unit it is
parent_of_b = result.nearest.b_to_a[:, 0]
strong_b = result.nearest.cos_b_to_a[:, 0] >= SAME
pieces = {int(u): np.flatnonzero(strong_b & (parent_of_b == u)) for u in splits}
distinct = sum(len(set(feature_b[p].tolist())) == len(p) for p in pieces.values())
print(
    f"{distinct} of {len(splits)} split narrow units became wide units that match different "
    "true features"
)

rows = ""
for kind in ("shared", "split", "merge", "new"):
    in_a, in_b = result.kind_a == kind, result.kind_b == kind
    cells = [kind]
    for chosen, cos in ((in_a, cos_a), (in_b, cos_b)):
        median = f"{np.median(cos[chosen]):.2f}" if chosen.any() else "–"
        cells += [
            str(int(chosen.sum())),
            median,
            f"{(cos[chosen] >= MATCH).mean():.0%}" if chosen.any() else "–",
        ]
    rows += "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
HTML(
    "<table><tr><th>kind</th><th>narrow units</th><th>median best |cos| to a true feature</th>"
    f"<th>recovered (≥ {MATCH})</th><th>wide units</th><th>median best |cos|</th>"
    f"<th>recovered (≥ {MATCH})</th></tr>{rows}</table>"
)

# %% [markdown]
# How to read it. In a full run (30,000 samples, 256 true features; the test suite's fast run
# is far smaller and its SAEs are barely trained, so its figures are noisier) we found 72
# shared, 53 split, 2 merged and 66 new units. The split narrow units had a median best
# cosine of 0.82 to a true feature, their wide pieces 1.00: the narrow units were blends, and
# 47 of the 53 splits went to different true features, as the reading predicts; the other 6
# split into near-copies of one feature (a split is not always a refinement). The 66 new wide
# units were true features (median 1.00) that the narrow SAE had no room for at all. A split
# unit's log2 firing ratio was about 1.2: a blend fires whenever any of its features does.
# Shared units sit near +0.6 as well, because at equal L0 the narrow SAE spreads the same
# number of firings over half as many units; read y relative to the shared cloud, not to 0.
#
# What this does *not* show: the "feature splitting" seen when language-model SAEs grow
# (a general feature refined into more specific ones) needs features that are nested; these
# are flat, so every split here is a blend being taken apart. The counts also move with the
# threshold: a blend of two equal features has cosine ≈ 0.71 with each, so at 0.7 many
# blends stop counting as matches and their pieces become "new".
# `sw.compare` takes any two SAEs on the same data: two seeds, two activations (TopK against
# `"matryoshka_batchtopk"`, say), or a checkpoint against its continued training.
