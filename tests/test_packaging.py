"""The package metadata lists every subpackage, so a wheel holds the whole library."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_subpackage_is_listed_in_pyproject():
    text = (ROOT / "pyproject.toml").read_text()
    listed = set(re.findall(r'"(minicam[\w.]*)"', re.search(r"^packages = \[(.*)\]$", text, re.M).group(1)))
    on_disk = {
        ".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "minicam").rglob("__init__.py")
    }
    assert on_disk, "no package found under minicam/"
    assert on_disk <= listed, f"subpackages missing from pyproject.toml packages: {sorted(on_disk - listed)}"
    assert "minicam.data" in listed  # data/ installs as minicam.data (bundled digits and models)


def test_import_minicam_needs_only_numpy():
    import subprocess
    import sys

    code = (
        "import sys, minicam\n"
        "heavy = sorted(m for m in ('matplotlib', 'PIL', 'torch', 'captum') if m in sys.modules)\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import minicam pulled in optional dependencies: {out}"
