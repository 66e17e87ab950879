"""`python main.py report`: the capacity-plan report from the command line, headless, in a real
subprocess; every file it writes opens in a real reader; bad arguments are one line and exit 2."""
import csv
import json
import os
import subprocess
import sys

import pytest
from PySide6.QtGui import QImage

from conftest import ROOT, SPECS
from engine.json_schema import validate

CNN = os.path.join(SPECS, "small_cnn.yaml")


def report(*args, timeout=600):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    return subprocess.run([sys.executable, "main.py", "report", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_the_report_command_writes_every_output_without_a_display(tmp_path):
    out = report("--model", CNN, "--batch", "4", "--capacity", "1GiB", "--pdf", str(tmp_path / "plan.pdf"),
                 "--png", str(tmp_path / "plan.png"), "--csv", str(tmp_path / "layers.csv"),
                 "--json", str(tmp_path / "plan.json"))
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    doc = json.loads((tmp_path / "plan.json").read_text())
    assert validate(doc) == [] and doc["fit"]["state"] == "fits"
    info = subprocess.run(["pdfinfo", str(tmp_path / "plan.pdf")], capture_output=True, text=True).stdout
    assert "Pages:           2" in info
    text = " ".join(subprocess.run(["pdftotext", str(tmp_path / "plan.pdf"), "-"], capture_output=True,
                                   text=True).stdout.split())
    assert "small-resnet" in text and f"{doc['peak_bytes']:,} bytes" in text and "FITS" in text
    # The command printed in the report asks for the same step on the same device.
    assert (f"python main.py report --model {CNN} --batch 4 --dtype float32 --mode train --optimizer adam "
            f"--device cuda --capacity 1073741824B") in text
    with open(tmp_path / "layers.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [layer["name"] for layer in doc["layers"]]
    assert [int(r["saved_bytes"]) for r in rows] == [layer["saved_bytes"] for layer in doc["layers"]]
    image = QImage(str(tmp_path / "plan.png"))
    assert not image.isNull() and (image.width(), image.height()) == (1240, 1754)  # A4 at 150 dpi


@pytest.mark.parametrize("args, code, message", [
    (["--model", CNN], 2, "nothing to write: give --pdf, --png, --csv or --json"),
    (["--model", CNN, "--pdf", "x.pdf", "--batch", "two"], 2, "invalid int value"),
    (["--model", CNN, "--pdf", "x.pdf", "--gpu", "Z9000 Ultra"], 1, "Z9000"),
    (["--model", "resnt18", "--pdf", "x.pdf"], 1, "Did you mean resnet18"),
    (["--model", CNN, "--pdf", "/no/such/folder/x.pdf"], 1, "--pdf /no/such/folder/x.pdf: folder"),
    (["--model", CNN, "--csv", "x.csv", "--gpu", "A100 80GB", "--capacity", "8GiB"], 1, "not both"),
])
def test_bad_arguments_are_one_line_and_an_exit_code(args, code, message):
    out = report(*args)
    assert out.returncode == code
    assert message in out.stderr and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
