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


def test_wheel_holds_the_bundled_files_and_pretrained_loads_from_it(tmp_path):
    """Build a wheel, unpack it, and load every bundled model from the unpacked copy alone."""
    import importlib.util
    import subprocess
    import sys
    import zipfile

    # Build from a clean copy: an in-tree build would reuse a stale build/ folder and could hide a
    # file that the package metadata no longer includes.
    import shutil

    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "minicam", src / "minicam", ignore=skip)
    shutil.copytree(ROOT / "data", src / "data", ignore=skip)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"), str(src)]
    if importlib.util.find_spec("setuptools") is not None:
        cmd.insert(4, "--no-build-isolation")  # build with the installed setuptools: faster, no download
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    (wheel,) = (tmp_path / "wheel").glob("minicam-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        zf.extractall(tmp_path / "site")
    for name in ("uci_digits.npz", "shapes-gap.npz", "shapes-fc.npz", "digits-gap.npz"):
        assert f"minicam/data/{name}" in names, f"{name} missing from the wheel"
    assert "minicam/explain/__init__.py" in names

    code = (
        "import minicam as mc, numpy as np\n"
        "assert mc.__file__.startswith(SITE), mc.__file__\n"
        "for name in ('shapes-gap', 'shapes-fc', 'digits-gap'):\n"
        "    assert str(mc.zoo.pretrained_path(name)).startswith(SITE), mc.zoo.pretrained_path(name)\n"
        "    model = mc.zoo.pretrained(name)\n"
        "    assert next(model.named_parameters())[1].dtype == np.float64\n"
        "print('ok')\n"
    )
    site = str(tmp_path / "site")
    env = {"PYTHONPATH": site, "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", f"SITE = {site!r}\n" + code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
