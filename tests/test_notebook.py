"""examples/quickstart.ipynb runs top to bottom (nbclient + ipykernel) and ends with a map of explained answers."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "\n".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "user" in text and "you liked" in text  # explained answers for a known user
    report = next(o for cell in nb.cells[:12] if "report.to_frame()" in cell.source for o in cell.outputs)
    assert "geotower" in report["data"]["text/plain"] and "ALS" in report["data"]["text/plain"]
    assert "image/png" in nb.cells[-1].outputs[-1].get("data", {})  # the map
