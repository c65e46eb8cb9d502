import subprocess
import sys

import pytest


@pytest.mark.slow
def test_analysis_never_imports_torch(pyfeat_dir):
    code = (
        "import sys\n"
        "from emotrace import Analyzer\n"
        "import emotrace.cli, emotrace.evaluation.classifier\n"
        f"r = Analyzer().analyze_video({str(pyfeat_dir / 'single_face.mp4')!r}, progress=False)\n"
        "assert len(r.frames) == 72\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('torch', 'kornia', 'mlflow')]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
