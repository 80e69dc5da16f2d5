"""notebooks/trial_distributions.ipynb runs headless on a tiny synthetic study."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.stats.synthetic import write_synthetic_study

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "trial_distributions.ipynb"


def _texts(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", ""))
            out.append(o.get("data", {}).get("text/plain", ""))
    return "\n".join(out)


@pytest.mark.parametrize("hp_sets", [("H1", "H2"), ("H1",)])
def test_notebook_executes(tmp_path, monkeypatch, hp_sets):
    study = write_synthetic_study(
        tmp_path / "study",
        datasets=("blur",),
        methods=("lg-only", "das", "random"),
        hp_sets=hp_sets,
        n_seeds=5,
    )
    monkeypatch.setenv("HARNESS_STUDY", str(study))
    monkeypatch.setenv("HARNESS_N_BOOT", "50")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError on any failing cell
    text = _texts(nb)
    assert f"{study}: " in text
    expected = "comparing das: hp set A=H1 vs B=H2" if len(hp_sets) == 2 else "comparing method A="
    assert expected in text
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert images >= 4


def test_notebook_executes_on_a_real_tiny_study(tmp_path, monkeypatch):
    """The same notebook on trials the real runner produced (2 epochs, small samples)."""
    from harness.runner import TrialSpec, TrialStore, run_specs

    fast = {"problem": {"samples_per_evaluation": 256}, "ops": {"channels": 4}}
    specs = [
        TrialSpec.make(dataset="blur", space="sequential", op_set="all", method=m, hp_set=h, seed=s, epochs=2,
                       options=fast)
        for m, h in [("das", "H1"), ("das", "H2"), ("random", "H1")]
        for s in range(3)
    ]
    study = tmp_path / "real"
    run_specs(specs, workers=1, store=TrialStore(study), progress=False)
    monkeypatch.setenv("HARNESS_STUDY", str(study))
    monkeypatch.setenv("HARNESS_N_BOOT", "50")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert "comparing das: hp set A=H1 vs B=H2" in _texts(nb)
