"""Batch keys keep the file suffix: `a.mp4` and `a.mov` in one folder are two recordings with
two output files; manifests written before (keys without the suffix) are taken over."""

from __future__ import annotations

import shutil

import pandas as pd

from emotrace.batch import read_manifest, run_batch
from emotrace.outputs.files import write_csv


def _folder(tmp_path, pyfeat_dir, names: dict[str, str]):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, source in names.items():
        shutil.copy(pyfeat_dir / source, folder / name)
    return folder


def test_same_name_other_suffix_are_two_recordings(tmp_path, pyfeat_dir):
    folder = _folder(tmp_path, pyfeat_dir, {"clip.mp4": "single_face.mp4",
                                            "clip.mov": "face_noface.mov"})
    out = tmp_path / "out"
    summary = run_batch([folder], out, workers=1, fps=2, progress=False)
    assert (summary.total, summary.done, summary.failed) == (2, 2, 0)
    manifest = read_manifest(out)
    assert sorted(manifest["key"]) == ["clip.mov", "clip.mp4"]
    for rec in manifest.itertuples():
        assert rec.output == str(out / "faces" / f"{rec.key}.parquet")
        df = pd.read_parquet(rec.output)
        assert (df["source"] == rec.path).all() and df["frame"].nunique() == rec.frames
    again = run_batch([folder], out, workers=1, fps=2, progress=False)
    assert (again.skipped, again.done) == (2, 0)


def test_a_manifest_with_old_keys_is_taken_over(tmp_path, pyfeat_dir):
    from emotrace.batch import legacy_key

    folder = _folder(tmp_path, pyfeat_dir, {"solo.mp4": "single_face.mp4",
                                            "pair.mp4": "single_face.mp4",
                                            "pair.mov": "face_noface.mov"})
    out = tmp_path / "out"
    run_batch([folder], out, workers=1, fps=2, progress=False)
    # what an older version left: keys and files without the suffix, one row for `pair`
    new = read_manifest(out)
    old = new[new["key"] != "pair.mp4"].copy()
    old["key"] = old["key"].map(legacy_key)
    old["output"] = [str(out / "faces" / f"{k}.parquet") for k in old["key"]]
    for rec_new, path in zip(new[new["key"] != "pair.mp4"]["output"], old["output"], strict=True):
        shutil.move(rec_new, path)
    (out / "faces" / "pair.mp4.parquet").unlink()
    write_csv(old, out / "manifest.csv")

    resumed = run_batch([folder], out, workers=1, fps=2, progress=False)
    # solo is skipped and its file renamed; the pair shared one file: both analysed again
    assert (resumed.skipped, resumed.done, resumed.failed) == (1, 2, 0)
    manifest = read_manifest(out).set_index("key")
    assert sorted(manifest.index) == ["pair.mov", "pair.mp4", "solo.mp4"]
    assert (manifest["status"] == "done").all()
    solo = out / "faces" / "solo.mp4.parquet"
    assert manifest.at["solo.mp4", "output"] == str(solo) and solo.is_file()
    assert not (out / "faces" / "solo.parquet").exists()
    assert (pd.read_parquet(solo)["source"] == str((folder / "solo.mp4").resolve())).all()
