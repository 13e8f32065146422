"""Data-parallel training (torch.distributed, gloo): 2 processes = 1 process on the same
global batches, weights, dead-unit counters and BatchTopK thresholds included."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import sae_widgets as sw

pytestmark = pytest.mark.slow  # each test starts processes that import torch

PARAMS = dict(n_units=48, k=4, epochs=2, batch_size=90, seed=2, dead_window=150, shuffle_buffer=500)


def _data():
    return sw.datasets.superposition(n=900, n_features=40, dim=20, active=3.0, seed=1).X


def _state(sae):
    trainer = sae._trainer
    return {
        **{k: v.detach().clone() for k, v in sae.model_.state_dict().items()},
        "samples_since_fired": trainer.samples_since_fired.clone(),
        "history": torch.tensor(
            [[h["loss"], h["fvu"], h["l0"], h["dead_fraction"]] for h in sae.history_],
            dtype=torch.float64,
        ),
        "counts": torch.tensor([sae.n_steps_, sae.n_samples_seen_]),
    }


RUNS = (("topk", False), ("batchtopk", False), ("topk", True))  # (activation, from a store)


def _worker(rank, world, port, store, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        states = {}
        for activation, from_store in RUNS:
            X = sw.ActivationStore(store) if from_store else _data()
            sae = sw.SAE(activation=activation, **PARAMS).fit(X, progress=False)
            states[activation, from_store] = _state(sae)
        if rank == 0:
            torch.save(states, out)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_process_runs(tmp_path_factory):
    """Every RUNS configuration trained once by 2 gloo processes (one spawn: torch imports
    are the slow part), and once by this process."""
    tmp = tmp_path_factory.mktemp("ddp")
    with sw.data.StoreWriter(tmp / "acts", 20, shard_size=100) as writer:
        writer.append(_data())
    out = str(tmp / "states.pt")
    mp.spawn(_worker, args=(2, 29511, str(tmp / "acts"), out), nprocs=2, join=True)
    torch.set_num_threads(1)
    single = {
        (activation, False): _state(
            sw.SAE(activation=activation, **PARAMS).fit(_data(), progress=False)
        )
        for activation in ("topk", "batchtopk")
    }
    return single, torch.load(out)


@pytest.mark.parametrize("run", RUNS, ids=lambda r: f"{r[0]}{'-store' if r[1] else ''}")
def test_two_processes_match_one(two_process_runs, run):
    single_runs, double_runs = two_process_runs
    activation = run[0]
    single, double = single_runs[activation, False], double_runs[run]
    assert single.keys() == double.keys()
    assert torch.equal(single["counts"], double["counts"])
    assert torch.equal(single["samples_since_fired"], double["samples_since_fired"])
    assert bool((single["samples_since_fired"] >= PARAMS["dead_window"]).any())  # AuxK ran
    for name in single:
        torch.testing.assert_close(double[name], single[name], rtol=1e-5, atol=1e-6, msg=name)
    if activation == "batchtopk":
        assert float(single["batch_threshold"].abs().sum()) > 0


def test_cli_trains_on_two_processes(tmp_path):
    X = _data()
    np.save(tmp_path / "x.npy", X)
    env = {**os.environ, "MASTER_PORT": "29514", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "sae_widgets", "train", "--data", str(tmp_path / "x.npy"),
               "--units", "32", "--k", "4", "--epochs", "1", "--nproc", "2", "--quiet", "--json",
               "--out", str(tmp_path / "run")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"processes": 2' in done.stdout and done.stdout.count('"processes"') == 1
    loaded = sw.SAE.load(tmp_path / "run")
    assert loaded.components_.shape == (32, 20)


def test_a_model_saved_on_one_device_loads_on_another(tmp_path):
    sae = sw.SAE(n_units=16, k=2, epochs=1).fit(_data(), progress=False)
    sae.save(tmp_path / "cpu")
    loaded = sw.SAE.load(tmp_path / "cpu")  # weights are read onto the CPU, whoever saved
    assert loaded.model_.W_dec.device.type == "cpu"
    np.testing.assert_array_equal(loaded.transform(_data()), sae.transform(_data()))
    moved = sw.SAE.load(tmp_path / "cpu", device="cpu")
    assert moved.device == "cpu" and moved.model_.W_dec.device.type == "cpu"
    with pytest.raises(ValueError, match=r"device must be .*'gpu7'"):
        sw.SAE.load(tmp_path / "cpu", device="gpu7")
    if torch.cuda.is_available():  # on a machine with a GPU: there and back
        on_gpu = sw.SAE.load(tmp_path / "cpu", device="cuda")
        assert on_gpu.model_.W_dec.device.type == "cuda"
        on_gpu.save(tmp_path / "gpu")
        back = sw.SAE.load(tmp_path / "gpu")
        np.testing.assert_allclose(back.transform(_data()), sae.transform(_data()), atol=1e-5)
