"""Every trainer runs on train.device (auto: CUDA, then MPS, else the CPU), records the device
it resolved, and uses mixed precision on CUDA only."""

import importlib
import json

import numpy as np
import pytest
import yaml

torch = pytest.importorskip("torch")

from emotrace.train.config import load_config  # noqa: E402
from emotrace.train.run import (  # noqa: E402
    Precision,
    batch_loader,
    choose_device,
    load_checkpoint,
    loader_kwargs,
    start_run,
)

NO_ACCELERATOR = not torch.cuda.is_available() and not torch.backends.mps.is_available()
TRAINERS = ("classifier", "embedding", "temporal", "clip")


@pytest.mark.parametrize("module", TRAINERS)
def test_every_trainer_defaults_to_auto(module):
    train = importlib.import_module(f"emotrace.train.{module}").DEFAULTS["train"]
    assert train["device"] == "auto"


@pytest.mark.skipif(not NO_ACCELERATOR, reason="this machine has an accelerator")
def test_auto_is_the_cpu_here_and_a_bad_device_is_refused_before_any_folder(tmp_path):
    assert choose_device("auto").type == "cpu"
    cfg = {"name": "r", "seed": 0, "output_dir": str(tmp_path / "out"),
           "train": {"device": "auto"}}
    start_run(cfg)
    assert cfg["train"]["device_resolved"] == "cpu"
    saved = yaml.safe_load((tmp_path / "out" / "r" / "config.yaml").read_text())
    assert saved["train"] == {"device": "auto", "device_resolved": "cpu"}
    for bad, problem in (("tpu", "must be one of cpu, cuda, mps, auto, got 'tpu'"),
                         ("cuda", "sees no CUDA device")):
        cfg = {"name": bad, "seed": 0, "output_dir": str(tmp_path / "out"),
               "train": {"device": bad}}
        with pytest.raises(ValueError, match=problem):
            start_run(cfg)
        assert not (tmp_path / "out" / bad).exists()


def test_precision_on_the_cpu_is_plain_float32_training():
    assert Precision("cpu").dtype is None and Precision("cpu").scaler is None
    torch.manual_seed(0)
    a = torch.nn.Linear(4, 2)
    b = torch.nn.Linear(4, 2)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 4)
    opt_a, opt_b = (torch.optim.SGD(n.parameters(), lr=0.1) for n in (a, b))
    amp = Precision("cpu")
    with amp.autocast():
        out = a(x)
        loss = out.square().mean()
    assert out.dtype == torch.float32
    amp.step(loss, opt_a)
    opt_b.zero_grad()
    b(x).square().mean().backward()
    opt_b.step()
    assert torch.equal(a.weight, b.weight) and not torch.equal(a.weight, b.weight * 0)


def test_loader_settings_and_batches_through_a_worker():
    cfg = {"train": {"workers": 1}}
    assert loader_kwargs(cfg, "cpu") == {"num_workers": 1, "pin_memory": False}
    assert loader_kwargs(cfg, torch.device("cuda"))["pin_memory"] is True
    assert loader_kwargs({"train": {}}, "cpu")["num_workers"] == 0
    with pytest.raises(ValueError, match="train.workers must be an integer >= 0"):
        loader_kwargs({"train": {"workers": -1}}, "cpu")
    images = np.arange(60, dtype=np.uint8).reshape(10, 2, 3)
    labels = np.arange(10) * 10
    batches = [np.array([3, 1]), np.array([9]), np.array([0, 5, 7])]
    got = list(batch_loader((images, labels), batches, cfg, "cpu"))
    assert [b[1].tolist() for b in got] == [[30, 10], [90], [0, 50, 70]]
    assert all(torch.equal(b[0], torch.from_numpy(images[rows])) for b, rows in
               zip(got, batches, strict=True))


def test_train_transform_takes_a_uint8_tensor_as_the_array():
    from emotrace.train.transforms import AugmentConfig, EvalTransform, TrainTransform

    faces = np.random.default_rng(0).integers(0, 255, (4, 48, 48), dtype=np.uint8)
    assert torch.equal(EvalTransform(64)(faces), EvalTransform(64)(torch.from_numpy(faces)))
    tf = TrainTransform(48, AugmentConfig())
    torch.manual_seed(3)
    a = tf(faces)
    torch.manual_seed(3)
    assert torch.equal(a, tf(torch.from_numpy(faces)))


@pytest.mark.slow
@pytest.mark.needs_shared
@pytest.mark.skipif(not NO_ACCELERATOR, reason="this machine has an accelerator")
def test_a_short_run_records_its_device_everywhere(tmp_path):
    from mlflow.tracking import MlflowClient

    from emotrace.train.classifier import DEFAULTS, train_classifier

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    cfg = load_config(None, ["name=tiny", f"output_dir={tmp_path}", "data.subset=128",
                             "data.eval_subset=64", "train.batch_size=64", "train.epochs=1",
                             "model.input_size=48", "train.warmup_epochs=0",
                             f"tracking.uri={uri}"], DEFAULTS)
    results = train_classifier(cfg, progress=False)
    run = tmp_path / "tiny"
    saved = yaml.safe_load((run / "config.yaml").read_text())["train"]
    assert saved["device"] == "auto" and saved["device_resolved"] == "cpu"
    assert json.loads((run / "metrics.json").read_text())["device"] == "cpu"
    assert results["device"] == "cpu"
    client = MlflowClient(uri)
    [logged] = client.search_runs([client.get_experiment_by_name(
        DEFAULTS["tracking"]["experiment"]).experiment_id])
    assert logged.data.params["train.device_resolved"] == "cpu"
    assert logged.data.params["train.device"] == "auto"
    # the checkpoints load as plain tensors and values; the config reads back as a config
    last = load_checkpoint(run / "last.pt")
    assert set(last["rng"]) >= {"numpy", "torch"} and last["epoch"] == 0
    assert tuple(load_checkpoint(run / "best.pt")["labels"]) == tuple(results["labels"])
    again = load_config(run / "config.yaml", [], DEFAULTS)
    assert again["train"]["device"] == "auto" and "device_resolved" not in again["train"]


def test_probe_records_its_device_and_refuses_a_bad_one(tmp_path):
    pytest.importorskip("sklearn")
    from emotrace.train.probe import run_probe

    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b"], 60)
    emb = rng.normal(size=(120, 8)).astype(np.float32) + (labels == "a")[:, None] * 2
    np.savez(tmp_path / "t.npz", embeddings=emb, labels=labels)
    report = run_probe(tmp_path / "t.npz", tmp_path / "out", epochs=3, device="auto")
    expected = choose_device("auto").type
    assert report["device"] == expected
    assert json.loads((tmp_path / "out" / "probe.json").read_text())["device"] == expected
    with pytest.raises(ValueError, match="--device must be one of"):
        run_probe(tmp_path / "t.npz", tmp_path / "out", epochs=3, device="gpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_mixed_precision_on_cuda_trains():
    amp = Precision("cuda")
    assert amp.dtype in (torch.bfloat16, torch.float16)
    net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(),
                              torch.nn.Linear(32, 4)).cuda()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2)
    x, y = torch.randn(64, 16, device="cuda"), torch.randint(0, 4, (64,), device="cuda")
    losses = []
    for _ in range(30):
        with amp.autocast():
            out = net(x)
            loss = torch.nn.functional.cross_entropy(out, y)
        assert out.dtype == amp.dtype
        amp.step(loss, opt)
        losses.append(float(loss))
    assert net[0].weight.dtype == torch.float32 and losses[-1] < losses[0]
