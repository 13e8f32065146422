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
#    respond.

# %%
import os

import ipywidgets as widgets
import numpy as np
import torch
from bqplot import Axis, Figure, LinearScale, Lines
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
# splice it back into the network (replace layer `net.1`'s output by the reconstruction and
# run the rest, `net[2:]`) and measure test accuracy again.

# %%
sae = sw.SAE(n_units=128, activation="topk", k=8, epochs=SAE_EPOCHS, batch_size=256, seed=0)
sae.fit(acts.X[train_idx])
print("on held-out digits:", sw.metrics.evaluate(sae, acts.X[test_idx]))

with torch.no_grad():
    reconstructed = torch.from_numpy(sae.inverse_transform(sae.transform(acts.X)))
    spliced_logits = model.net[2:](reconstructed)
print(
    f"test accuracy: original {accuracy(logits, test_idx):.1%}, "
    f"with the SAE reconstruction spliced in {accuracy(spliced_logits, test_idx):.1%}"
)

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
ex = sw.Explorer(sae, acts)
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
# ## Everything together
#
# The dashboard links every view through `ex.selection`: brush the PCA plot of the codes to
# select digits, click a unit column in the heatmap, and probe it.

# %%
ex.dashboard()
