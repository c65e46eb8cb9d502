"""`emotrace eval embedding` names its outputs so that two models never share a file."""

import json

import pytest

torch = pytest.importorskip("torch")

from emotrace.evaluation.embedding import evaluate_embedding, output_stem  # noqa: E402


def test_output_stems_differ_for_files_of_one_name_and_keep_registry_names(tmp_path,
                                                                          monkeypatch):
    a, b, c = (tmp_path / "runs" / "a", tmp_path / "runs" / "b", tmp_path / "old" / "a")
    stems = {output_stem(str(d / "model.onnx")) for d in (a, b, c)}
    assert len(stems) == 3
    assert output_stem(str(a / "model.onnx")).startswith("a_model_")
    assert output_stem("emotrace-ferplus8") == "emotrace-ferplus8"
    monkeypatch.chdir(tmp_path)  # the same file by another spelling: the same stem
    assert output_stem("runs/a/model.onnx") == output_stem(str(a / "model.onnx"))


@pytest.mark.needs_shared
def test_two_heads_named_model_onnx_write_two_reports(tmp_path):
    from emotrace.train.embedding import ProjectionHead
    from emotrace.train.export import export_head

    paths = []
    for seed, run in enumerate(("a", "b")):
        torch.manual_seed(seed)
        (tmp_path / run).mkdir()
        paths.append(export_head(ProjectionHead(512, 64, 16).eval(), 512, "emotrace-ferplus8",
                                 tmp_path / run / "model.onnx"))
    out = tmp_path / "eval"
    reports = [evaluate_embedding(str(p), "ferplus-test", out, limit=80, train_sample=120)
               for p in paths]
    files = sorted(f.name for f in out.glob("*.json"))
    assert len(files) == 2 and len(list(out.glob("*.png"))) == 2
    written = [json.loads((out / f"{output_stem(str(p))}_ferplus-test_embedding.json")
                          .read_text()) for p in paths]
    assert [w["model"] for w in written] == [str(p) for p in paths]
    assert [w["uniformity"] for w in written] == [r["uniformity"] for r in reports]
    assert written[0]["uniformity"] != written[1]["uniformity"]  # two different heads
