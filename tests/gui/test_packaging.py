"""`pip install .` gives a `memlens` command (window, or `memlens analyze ...`) that runs from any
folder, with the dependencies pinned as requirements.txt pins them."""
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import ROOT, SPECS


def _requirements() -> set[str]:
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        return {line.strip() for line in f if line.strip() and not line.lstrip().startswith("#")}


def test_pyproject_declares_exactly_the_pins_of_requirements_txt():
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    declared = set(project["dependencies"]).union(*project["optional-dependencies"].values())
    assert declared == _requirements()
    assert project["scripts"] == {"memlens": "gui.app:run"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel built from a copy of the source, installed (without dependencies) into a folder."""
    src, target, wheels = (tmp_path_factory.mktemp(n) for n in ("src", "target", "wheels"))
    for name in ("engine", "gui", "resources"):
        shutil.copytree(os.path.join(ROOT, name), src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), src / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(src)], check=True,
                   capture_output=True, timeout=300)
    wheel = next(wheels.glob("memlens-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    return wheel, target


def test_the_wheel_holds_the_packages_and_the_console_script(installed):
    wheel, _ = installed
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = z.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert {"engine/pipeline.py", "engine/sources/spec.py", "gui/window.py", "gui/app.py"} <= names
    sources = {os.path.relpath(os.path.join(d, f), ROOT) for top in ("engine", "gui")
               for d, _, fs in os.walk(os.path.join(ROOT, top)) for f in fs if f.endswith(".py")}
    assert sources <= names, f"modules missing from the wheel: {sorted(sources - names)[:5]}"
    shipped = {os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(os.path.join(ROOT, "resources"))
               for f in fs if "__pycache__" not in d}
    assert shipped and shipped <= names, f"resources missing from the wheel: {sorted(shipped - names)[:5]}"
    assert not any(n.startswith("tests/") for n in names)
    assert "memlens = gui.app:run" in entry_points


def test_the_installed_memlens_analyze_runs_from_another_folder(installed, tmp_path):
    _, target = installed
    script = target / "bin" / "memlens"
    env = dict(os.environ, PYTHONPATH=str(target))
    out = subprocess.run([str(script), "analyze", "--model", os.path.join(SPECS, "small_cnn.yaml"), "--batch", "2"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "traced peak:" in out.stdout
    # the GPU catalog (resources/gpus.yaml) is found installed, far from the source checkout
    fit = subprocess.run([str(script), "analyze", "--model", os.path.join(SPECS, "small_cnn.yaml"), "--batch", "2",
                          "--gpu", "A100 80GB"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert fit.returncode == 0, fit.stderr
    assert "A100" in fit.stdout
    help_text = subprocess.run([str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=120)
    assert help_text.returncode == 0 and "usage: memlens" in help_text.stdout
