"""Probes: an MLP and an SVM on real FER+ embeddings, from every table format."""

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("sklearn")

from typer.testing import CliRunner

from emotrace.train.probe import embeddings_from_faces, load_embeddings, run_probe


@pytest.fixture(scope="module")
def table(tmp_path_factory, data_dir):  # embeds FER+ faces from ../shared
    return embeddings_from_faces("emotrace-ferplus8", tmp_path_factory.mktemp("p") / "e.npz",
                                 limit=300)


@pytest.mark.slow
def test_mlp_and_svm_on_real_embeddings(table, tmp_path):
    report = run_probe(table, tmp_path, epochs=30)
    assert report["n"] == {"train": 300, "valid": 300, "test": 300}
    for name in ("mlp", "svm"):  # the majority class (neutral) is about 35% of these faces
        assert report[name]["accuracy"] > 0.7, report[name]
    assert (tmp_path / "probe.json").is_file()
    assert (tmp_path / "probe_curves.png").stat().st_size > 10_000
    columns = {"train_loss", "valid_loss", "valid_accuracy", "valid_macro_f1"}
    assert columns <= set(report["history"][0])


@pytest.mark.slow
def test_table_formats_and_split(table, tmp_path):
    z = np.load(table)
    emb, labels = z["embeddings"][:400], z["labels"][:400]
    wide = pd.DataFrame(emb, columns=[f"e{i}" for i in range(emb.shape[1])]).assign(label=labels)
    wide.to_csv(tmp_path / "wide.csv", index=False)
    pd.DataFrame({"embedding": list(emb), "label": labels}).to_parquet(tmp_path / "list.parquet")
    for name in ("wide.csv", "list.parquet"):
        got, lab, split = load_embeddings(tmp_path / name)
        assert np.allclose(got, emb, atol=1e-5) and (lab == labels).all() and split is None
    report = run_probe(tmp_path / "list.parquet", tmp_path / "out", epochs=5)
    assert sum(report["n"].values()) == 400 and report["n"]["train"] > report["n"]["test"]


def test_cli_errors(tmp_path):
    from emotrace.cli import app

    run = CliRunner().invoke(app, ["probe", str(tmp_path / "none.npz")])
    assert run.exit_code == 2 and "none.npz: no such file" in run.output
    pd.DataFrame({"x": [1, 2]}).to_csv(tmp_path / "bad.csv", index=False)
    run = CliRunner().invoke(app, ["probe", str(tmp_path / "bad.csv")])
    assert run.exit_code == 2 and "needs a 'label' column" in run.output
