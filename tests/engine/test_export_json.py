"""`analyze --json` conforms to the documented schema (docs/SCHEMA.md, engine/json_schema.py),
and the schema is strict: an undocumented or mistyped key fails."""
import copy
import dataclasses
import json
import os
import re

import pytest

from conftest import ROOT, SPECS, run_main_concurrently
from engine.json_schema import ANALYSIS_SCHEMA, validate
from engine.report import SCHEMA_VERSION
from engine.request import AnalysisRequest

CNN = os.path.join(SPECS, "small_cnn.yaml")


# Each run is its own main.py process (a torch start-up); the module starts them together.
RUNS = {"plain": [], "fit_check": ["--gpu", "A100 80GB"], "largest_batch": ["--max-batch", "--capacity", "1GiB"]}


@pytest.fixture(scope="module")
def documents():
    runs = run_main_concurrently({name: ["analyze", "--model", CNN, "--batch", "4", *args, "--json", "-"]
                                  for name, args in RUNS.items()})
    for out in runs.values():
        assert out.returncode == 0, out.stderr
    return {name: json.loads(out.stdout) for name, out in runs.items()}


@pytest.fixture(scope="module")
def document(documents):
    return documents["plain"]


def test_real_cli_output_validates(document):
    assert validate(document) == []
    assert document["schema"] == SCHEMA_VERSION


def test_cli_output_with_a_fit_check_and_a_largest_batch_validates(documents):
    fitted = documents["fit_check"]
    assert fitted["fit"]["state"] == "fits" and validate(fitted) == []
    largest = documents["largest_batch"]
    assert largest["max_batch"] >= 1 and validate(largest) == []


def test_an_undocumented_key_fails(document):
    for where in (document, document["request"], document["layers"][0], document["timeline"]):
        broken = copy.deepcopy(document)
        target = broken if where is document else (broken["request"] if where is document["request"] else
                                                   broken["layers"][0] if where is document["layers"][0]
                                                   else broken["timeline"])
        target["surprise"] = 1
        errors = validate(broken)
        assert len(errors) == 1 and "undocumented key 'surprise'" in errors[0]


@pytest.mark.parametrize("path, value, message", [
    (("peak_bytes",), "5 MiB", "expected integer"),
    (("peak_bytes",), -1, "below the minimum"),
    (("peak_breakdown", "activations"), True, "expected integer"),
    (("request", "mode"), "training", "is not one of"),
    (("schema",), SCHEMA_VERSION + 1, "expected"),
    (("layers", 0, "kind"), "convolution", "is not one of"),
])
def test_a_wrong_value_names_where_it_is(document, path, value, message):
    broken = copy.deepcopy(document)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = validate(broken)
    assert len(errors) == 1 and message in errors[0]
    assert errors[0].startswith("$." + ".".join(str(p) for p in path).replace(".0", "[0]"))


def test_a_missing_key_fails(document):
    broken = copy.deepcopy(document)
    del broken["textbook"]
    assert validate(broken) == ["$: missing key 'textbook'"]


def test_every_request_field_and_every_top_level_key_is_documented():
    fields = {f.name for f in dataclasses.fields(AnalysisRequest)}
    assert set(ANALYSIS_SCHEMA["properties"]["request"]["properties"]) == fields
    with open(os.path.join(ROOT, "docs", "SCHEMA.md"), encoding="utf-8") as f:
        documented = set(re.findall(r"^\| `([a-z_.\[\]]+)`", f.read(), re.M))
    for key in ANALYSIS_SCHEMA["properties"]:
        assert key in documented, f"docs/SCHEMA.md does not describe {key!r}"
    for name, sub in ANALYSIS_SCHEMA["properties"].items():
        prefix = f"{name}[]." if sub.get("type") == "array" else f"{name}."
        for key in sub.get("items", sub).get("properties", {}):
            assert prefix + key in documented, f"docs/SCHEMA.md does not describe {prefix + key}"
