"""Executes a notebook headless (nbclient), failing on the first error.

    SWEEP_DIR=target/ci-sweep python3 notebooks/run-notebook.py notebooks/sweep-analysis.ipynb
"""
import sys
from pathlib import Path

import nbclient
import nbformat

path = Path(sys.argv[1])
nb = nbformat.read(path, as_version=4)
nbclient.NotebookClient(
    nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
).execute()
print(f"{path}: {len(nb.cells)} cells executed")
