"""Source of notebooks/03_model_activations.ipynb (build with notebooks/_build.py)."""

# %% [markdown]
# # 03 · An SAE on a model's hidden layer
#
# SAEs are mostly used to read the hidden activations of a trained network. This notebook
# does the whole loop on a CPU in a minute or two:
#
# 1. train a small MLP classifier on the 8×8 digits;
# 2. collect one hidden layer's activations with `sw.collect_activations` (a forward hook);
# 3. train an SAE on those activations and check that the classifier still works when its
#    hidden layer is replaced by the SAE's reconstruction;
# 4. inspect the units through the **input images** that activate them most;
# 5. probe the units *through the model*: rotate an input digit and watch the hidden units
#    respond;
# 6. the causal half: switch units off inside the model to see which ones the classifier
#    needs for which digit, and push one unit to change a prediction.

# %%
import os

import ipywidgets as widgets
import numpy as np
import torch
from bqplot import Axis, ColorScale, Figure, GridHeatMap, LinearScale, Lines, OrdinalScale
from IPython.display import HTML, display
from sklearn.model_selection import train_test_split
from torch import nn

import sae_widgets as sw

# The test suite sets SAE_WIDGETS_FAST=1 to run every notebook quickly on less data.
# Leave it unset for the real tutorial (a minute or two on a laptop CPU).
FAST = os.environ.get("SAE_WIDGETS_FAST") == "1"
CLASSIFIER_STEPS = 150 if FAST else 400
SAE_EPOCHS = 10 if FAST else 60
torch.manual_seed(0)


# %% [markdown]
# ## 1 · A small classifier
#
# scikit-learn's 1,797 digits, split 75 / 25 into train and test. The model is a plain MLP;
# its layers live in `model.net`, so the hidden layers have names like `"net.1"` (the
# output of the first ReLU). Full-batch Adam trains it in a few seconds.

# %%
ds = sw.datasets.digits()
train_idx, test_idx = train_test_split(
    np.arange(len(ds)), test_size=0.25, random_state=0, stratify=ds.labels
)
X = torch.from_numpy(ds.X)
y = torch.from_numpy(ds.labels).long()


class DigitMLP(nn.Module):
    def __init__(self, hidden=128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, x):
        return self.net(x.flatten(1))


model = DigitMLP()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3, weight_decay=1e-4)
for _ in range(CLASSIFIER_STEPS):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(X[train_idx]), y[train_idx])
    loss.backward()
    optimizer.step()
model.eval()


def accuracy(logits, idx):
    return float((logits[idx].argmax(1) == y[idx]).float().mean())


with torch.no_grad():
    logits = model(X)
print(f"train loss {loss.item():.3f}")
print(f"accuracy: train {accuracy(logits, train_idx):.1%}, test {accuracy(logits, test_idx):.1%}")

# %% [markdown]
# ## 2 · Collect the hidden layer
#
# `sw.collect_activations(model, layer, data)` runs the model over the dataset with a
# forward hook on `layer` and returns a new `Dataset` whose `X` is that layer's output. The
# labels and images come along, so every view can still draw the input digit of a sample,
# and every **attribute** (rotation, shift, scale, thickness) now acts *through the model*:
# it transforms the input image and runs it to the hooked layer.

# %%
acts = sw.collect_activations(model, layer="net.1", data=ds)
print(acts)
print(f"hidden units active per digit: {(acts.X > 0).sum(1).mean():.1f} of {acts.X.shape[1]}")

# %% [markdown]
# The neurons themselves are dense: most of them fire on every digit, so reading one neuron at a
# time is hard. The SAE rewrites each activation vector as a sum of a few units from a
# learned dictionary.
#
# ## 3 · An SAE on the activations
#
# A TopK SAE with 128 units and `k = 8`, trained on the training digits' activations only.
# Two numbers matter. The FVU on held-out digits says how well it reconstructs; the
# `dead_fraction` says how many units never fire (with only ~1,300 training vectors a good
# share of units finds nothing to do, which is why the dictionary is no wider than the
# layer). And for a model's activations, the reconstruction should still *do the job*: we
# splice it back into the network and measure what the classifier loses.
#
# `sw.metrics.evaluate(sae, data, model=..., layer=...)` does the splicing with a forward
# hook: it runs the model over `data` four ways (as is; with `net.1`'s output replaced by
# the SAE reconstruction; with it zeroed; with it replaced by its mean) and reports the
# cross-entropy and accuracy of each. **Loss recovered** = (CE_zero − CE_SAE) /
# (CE_zero − CE_original) is the figure SAELens and SAEBench report: 1 means the
# reconstruction costs the classifier nothing, 0 means it is as bad as deleting the layer.
# `loss_recovered_mean_ablation` uses the mean-ablated layer as the baseline instead, a
# stricter one.

# %%
sae = sw.SAE(n_units=128, activation="topk", k=8, epochs=SAE_EPOCHS, batch_size=256, seed=0)
sae.fit(acts.X[train_idx])
print("on held-out digits:", sw.metrics.evaluate(sae, acts.X[test_idx]))
spliced = sw.metrics.evaluate(sae, ds[test_idx], model=model, layer="net.1")
for key in ("accuracy_original", "accuracy_spliced", "accuracy_zero_ablated",
            "accuracy_mean_ablated"):
    print(f"{key:<24} {spliced[key]:.1%}")
print(f"loss recovered: {spliced['loss_recovered']:.3f} (zero ablation), "
      f"{spliced['loss_recovered_mean_ablation']:.3f} (mean ablation)")

# %% [markdown]
# ## 4 · Units by their top-activating digits
#
# An `Explorer` ties the SAE to the activation dataset. `ex.unit_summary(u)` tells how often
# a unit fires, which samples excite it most and how **label-selective** it is (1: it fires
# on one digit class only; 0: evenly on all ten).
#
# Below, the most label-selective units, each with its twelve strongest digits. Many units
# are "this digit" detectors; look also at the less selective ones further down, which fire
# on a *part* shared by several digits (a top bar, a closed loop, a diagonal stroke).

# %%
ex = sw.Explorer(sae, acts, model=model, layer="net.1", inputs=ds)
summaries = [ex.unit_summary(u) for u in range(ex.n_units)]
alive = [s for s in summaries if s.count >= 10]
print(f"{len(alive)} of {ex.n_units} units fire on at least 10 digits")
by_selectivity = sorted(alive, key=lambda s: -s.label_selectivity)


def unit_row(s):
    label = "–" if s.top_label is None else acts.label_names[s.top_label]
    return widgets.HBox(
        [
            widgets.HTML(
                f"<b>unit {s.unit}</b><br>fires on {s.frequency:.1%}<br>"
                f"top label {label} ({s.top_label_precision:.0%})<br>"
                f"selectivity {s.label_selectivity:.2f}",
                layout=widgets.Layout(width="170px"),
            ),
            sw.image_grid(acts.images[s.top_samples[:12]], n_cols=12, zoom=4),
        ]
    )


display(HTML("<h4>Most label-selective units</h4>"))
display(widgets.VBox([unit_row(s) for s in by_selectivity[:5]]))
display(HTML("<h4>Frequent units shared across digits (least selective)</h4>"))
frequent = sorted(alive, key=lambda s: -s.frequency)[: max(10, len(alive) // 4)]
widgets.VBox([unit_row(s) for s in sorted(frequent, key=lambda s: s.label_selectivity)[:4]])

# %% [markdown]
# The `UnitInspector` shows one unit in depth: its activation histogram, its top samples
# (drawn as the *input* digits, since the dataset carries images), samples from weaker
# activation ranges, its label distribution and its most similar units. The decoder
# direction lives in the 128-dimensional hidden space here, not in pixel space, so it is not
# drawn as an image. Focus another unit by setting `ex.selection.unit`.

# %%
ex.selection.unit = by_selectivity[0].unit
sw.UnitInspector(ex)

# %% [markdown]
# ## 5 · Probing through the model
#
# `acts.attributes["rotation"]` rotates the *input* digit and runs it through the classifier
# up to `net.1`. Check that it is the same as doing it by hand:

# %%
sample = int(test_idx[0])
by_hand = acts.attributes["rotation"].apply([sample], 30.0)
rotated_input = ds.attributes["rotation"].apply([sample], 30.0)
with torch.no_grad():
    manual = model.net[:2](torch.from_numpy(rotated_input)).numpy()
print("max difference:", float(np.abs(by_hand - manual).max()))
print(
    "hidden layer change from a 30° rotation (relative):",
    f"{np.linalg.norm(by_hand[0] - acts.X[sample]) / np.linalg.norm(acts.X[sample]):.2f}",
)

# %% [markdown]
# The `ProbeSlider` uses exactly this: drag it to rotate the digit; the panel shows the
# rotated input, its reconstruction, and the response curves of the units most sensitive to
# rotation. Units that fire on an upright stroke fade as the digit tilts and others take
# over. Try the other attributes too (`shift_x`, `scale`, `thickness`).

# %%
ex.selection.probe_sample = sample
sw.ProbeSlider(ex, attribute="rotation")

# %% [markdown]
# The same question with numbers: which units change most when the test digits are
# rotated, and how does the **classifier** cope? Both come from one sweep over the grid of
# angles. Accuracy drops as the digits tilt. Read the shape of each unit's curve: a unit
# that peaks near 0° encodes something about upright digits and fades as they turn; a unit
# that rises as the digits turn one way (or both ways) responds to the tilt itself, that is,
# to inputs unlike any digit the classifier was trained on. Such units are a cheap warning
# light for inputs the model was never meant to see.

# %%
probe = ex.probe(test_idx, "rotation")
print("most rotation-sensitive units:", probe.ranked_units[:6].tolist())

angles = ds.attributes["rotation"].values
rotated_test = ds.attributes["rotation"].sweep(test_idx)  # (angles, test digits, 64)
with torch.no_grad():
    predictions = model(torch.from_numpy(rotated_test.reshape(-1, 64))).argmax(1)
correct = (predictions.reshape(len(angles), -1) == y[test_idx]).float().mean(1).numpy()

angle_scale, acc_scale, act_scale = LinearScale(), LinearScale(min=0, max=1), LinearScale()
accuracy_figure = Figure(
    marks=[Lines(x=angles, y=correct, marker="circle", scales={"x": angle_scale, "y": acc_scale})],
    axes=[
        Axis(scale=angle_scale, label="rotation (degrees)"),
        Axis(scale=acc_scale, orientation="vertical", label="test accuracy", tick_format=".0%"),
    ],
    title="Classifier accuracy on rotated test digits",
    layout={"width": "420px", "height": "300px"},
)
top = probe.ranked_units[:4]
response_figure = Figure(
    marks=[
        Lines(
            x=probe.values,
            y=probe.response[:, top].T,
            labels=[f"unit {u}" for u in top],
            display_legend=True,
            scales={"x": angle_scale, "y": act_scale},
        )
    ],
    axes=[
        Axis(scale=angle_scale, label="rotation (degrees)"),
        Axis(scale=act_scale, orientation="vertical", label="mean activation"),
    ],
    title="Most rotation-sensitive units",
    layout={"width": "420px", "height": "300px"},
)
widgets.HBox([accuracy_figure, response_figure])

# %% [markdown]
# ## 6 · The causal half: which units does the classifier use?
#
# Everything so far is correlation: a unit *fires* on sevens. Whether the classifier *uses*
# it to say "7" is a different question, answered by intervening. `sw.Intervention` edits
# the layer's output while the model runs (a forward hook, removed when the `with` block
# ends, even on an error). `set={u: 0.0}` switches unit `u` off **in SAE space, keeping
# the reconstruction error**: the layer's output becomes x − a_u · W_dec[u], so everything
# the SAE does not explain stays in place and only the unit's own contribution goes.
#
# Below, every unit that fires on the test digits is switched off in turn, and we measure
# how each digit class's test accuracy and cross-entropy change.

# %%
X_test, y_test = torch.from_numpy(ds.X[test_idx]), y[test_idx]
classes = np.arange(10)


def per_class(logits):
    """(accuracy, mean cross-entropy) of each digit class on the test digits."""
    ce = nn.functional.cross_entropy(logits, y_test, reduction="none")
    right = (logits.argmax(1) == y_test).float()
    return (
        np.array([right[y_test == c].mean().item() for c in classes]),
        np.array([ce[y_test == c].mean().item() for c in classes]),
    )


with torch.no_grad():
    base_acc, base_ce = per_class(model(X_test))
    test_firing = (sae.transform(acts.X[test_idx]) > 0).mean(0)
    candidates = np.flatnonzero(test_firing > 0.01)
    acc_drop, ce_rise = [], []
    for u in candidates:
        with sw.Intervention(model, "net.1", sae, set={int(u): 0.0}):
            acc, ce = per_class(model(X_test))
        acc_drop.append(base_acc - acc)
        ce_rise.append(ce - base_ce)
acc_drop, ce_rise = np.array(acc_drop), np.array(ce_rise)  # (units, classes)
order = np.argsort(-ce_rise.max(1))
print(f"{len(candidates)} units fire on more than 1% of the test digits")
print("unit  class hurt most  CE rise  accuracy drop  fires on  fires most on (precision)")
for row in order[:8]:
    u, c = int(candidates[row]), int(ce_rise[row].argmax())
    s = ex.unit_summary(u)
    print(
        f"{u:>4}  {c:>15}  {ce_rise[row, c]:+7.3f}  {acc_drop[row, c]:+13.1%}"
        f"  {test_firing[u]:8.1%}  {s.top_label} ({s.top_label_precision:.0%})"
    )
print(f"median over units of the largest CE rise: {np.median(ce_rise.max(1)):+.3f}")

# %% [markdown]
# Read the table honestly. Switching off one unit out of 128 usually changes little: the
# median CE rise is small, because the classifier reads the layer through many units at
# once and most units are shared by several classes. A few units stand out: switching one
# of them off costs one digit class clearly more than the others; compare that class with
# the digit the unit fires on most (last column). Where they agree, the unit is one the
# classifier *uses* for that digit, not just one that correlates with it; where they
# differ, the classifier uses the unit for a digit other than the one it fires on most,
# which is worth a look in the `UnitInspector`. An
# accuracy drop of a few percent on a class of ~45 test digits is one or two digits, so
# the CE column is the steadier measure.
#
# The heat map shows the CE rise of the 16 most important units (rows) for each class
# (columns).

# %%
top_rows = order[:16]
row_scale, col_scale = OrdinalScale(), OrdinalScale()
heat = Figure(
    marks=[
        GridHeatMap(
            color=ce_rise[top_rows],
            row=[f"unit {int(candidates[r])}" for r in top_rows],
            column=[str(c) for c in classes],
            scales={"row": row_scale, "column": col_scale, "color": ColorScale(scheme="Reds")},
        )
    ],
    axes=[
        Axis(scale=col_scale, label="digit class"),
        Axis(scale=row_scale, orientation="vertical"),
    ],
    title="CE rise when one unit is switched off",
    fig_margin={"top": 40, "bottom": 40, "left": 80, "right": 10},
    layout={"width": "460px", "height": "460px"},
)
heat

# %% [markdown]
# ## 7 · Steering a unit to change a prediction
#
# The other direction: push a unit *up* and watch the prediction move. `steer={u: alpha}`
# adds alpha · W_dec[u] to the layer's output, as if the unit fired alpha more strongly.
# Take the most important unit for some class, and a test digit of another class; steer
# until the prediction flips (or give up at 4× the unit's largest activation).

# %%
row = order[0]
unit, target = int(candidates[row]), int(ce_rise[row].argmax())
donor = int(test_idx[(y_test.numpy() != target)][0])
x_donor = torch.from_numpy(ds.X[[donor]])
unit_max = float(ex.codes.max_activation[unit])
with torch.no_grad():
    for alpha in np.linspace(0, 4 * unit_max, 17):
        with sw.Intervention(model, "net.1", sae, steer={unit: float(alpha)}):
            probs = torch.softmax(model(x_donor), 1)[0]
        print(
            f"alpha {alpha:6.2f}: predicted {int(probs.argmax())} "
            f"(p={probs.max():.2f}), p({target}) = {probs[target]:.2f}"
        )
        if int(probs.argmax()) == target:
            break
print(f"digit {donor} is a {int(y[donor])}; unit {unit} matters most for class {target}")

# %% [markdown]
# Whether it flips depends on the unit and the digit: some units turn almost any digit into
# their class within their normal activation range, others need a push far beyond anything
# the data shows (then the model is off its training distribution and the flip says less).
# The `SteeringView` does this interactively for the focused unit: the slider sets alpha,
# the bars compare the class probabilities with the unedited ones, the curves show every
# class's probability over the whole range, and the last plot shows how much of the push the
# SAE itself reads back at the layer (a TopK SAE may ignore a push that does not make the
# unit one of the k largest). It steers the selected digits, else the probe sample, else 64
# random digits.

# %%
ex.selection.probe_sample = donor
ex.selection.unit = unit
sw.SteeringView(ex)

# %% [markdown]
# ## Everything together
#
# The dashboard links every view through `ex.selection`: brush the PCA plot of the codes to
# select digits, click a unit column in the heatmap, probe it, and steer it (the Explorer
# knows the model and layer, so the steering view joins the dashboard).

# %%
ex.dashboard()
