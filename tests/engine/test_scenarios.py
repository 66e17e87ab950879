"""Scenario A/B without Qt: every number of a comparison is the difference of the analyses' own
figures, layers are matched by name, phases line up on one axis, and the CSV reads back exactly."""
import csv
import io
import os

import numpy as np
import pytest

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.categories import CATEGORIES, PHASES
from engine.devices import custom_device, find_gpu
from engine.errors import MemLensError
from engine.footprint import fit_check
from engine.scenarios import Scenario, compare, layer_bytes, overlay_curve, phase_x, write_comparison_csv

CNN = os.path.join(SPECS, "small_cnn.yaml")
A100 = find_gpu("A100 80GB")


@pytest.fixture(scope="module")
def runs():
    base = AnalysisRequest(model=CNN, batch=4)
    return {
        "fp32 adam b4": analyze(base),
        "sgd": analyze(base.replace(optimizer="sgd")),
        "b8": analyze(base.replace(batch=8)),
        "inference": analyze(base.replace(mode="inference", optimizer="none")),
    }


def scenarios(runs, *names, device=None):
    return [Scenario(name, runs[name], device) for name in names]


def test_every_difference_is_the_difference_of_the_two_analyses_own_figures(runs):
    a, b = runs["fp32 adam b4"], runs["b8"]
    c = compare(scenarios(runs, "fp32 adam b4", "b8"))
    assert [col.peak_bytes for col in c.columns] == [a.peak.total_bytes, b.peak.total_bytes]
    assert c.peak_delta == (0, b.peak.total_bytes - a.peak.total_bytes)
    # one device: every category but communication (no collective buffers; tests/gui/test_distributed_gui.py)
    assert [r.category for r in c.categories] == [c for c in CATEGORIES if c != "communication"]
    for row in c.categories:
        assert row.bytes == (a.peak.breakdown[row.category], b.peak.breakdown[row.category])
        assert row.delta == (0, b.peak.breakdown[row.category] - a.peak.breakdown[row.category])
    assert sum(r.delta[1] for r in c.categories) == c.peak_delta[1]  # the categories add up to the peak


def test_the_baseline_can_be_any_column(runs):
    c = compare(scenarios(runs, "fp32 adam b4", "sgd", "b8"), baseline=1)
    sgd = runs["sgd"].peak.total_bytes
    assert c.peak_delta == tuple(runs[n].peak.total_bytes - sgd for n in ("fp32 adam b4", "sgd", "b8"))
    optimizer = next(r for r in c.categories if r.category == "optimizer_state")
    assert optimizer.delta[0] > 0  # Adam keeps two moments where SGD keeps none


def test_the_layers_that_changed_most_are_matched_by_name_and_ranked(runs):
    a, b = runs["fp32 adam b4"], runs["b8"]
    c = compare(scenarios(runs, "fp32 adam b4", "b8"), top=10)
    assert 0 < len(c.layers) <= 10
    for row in c.layers:
        assert row.bytes == (layer_bytes(a.layer_named(row.name)), layer_bytes(b.layer_named(row.name)))
        assert row.delta[1] == row.bytes[1] - row.bytes[0] != 0
    changes = [row.change for row in c.layers]
    assert changes == sorted(changes, reverse=True)
    # Nothing left out changed more than the last one listed.
    listed = {row.name for row in c.layers}
    rest = [abs(layer_bytes(b.layer_named(layer.name)) - layer_bytes(layer)) for layer in a.layers
            if layer.name not in listed]
    assert max(rest, default=0) <= changes[-1]


def test_an_optimizer_change_moves_no_layer(runs):
    c = compare(scenarios(runs, "fp32 adam b4", "sgd"))
    assert c.layers == ()  # layers hold parameters, outputs and saved tensors: the optimizer touches none


def test_inference_drops_what_training_saves_for_backward(runs):
    c = compare(scenarios(runs, "fp32 adam b4", "inference"))
    train, infer = runs["fp32 adam b4"], runs["inference"]
    assert c.layers and all(row.delta[1] < 0 for row in c.layers)
    top = c.layers[0]
    assert -top.delta[1] == train.layer_named(top.name).saved_bytes - infer.layer_named(top.name).saved_bytes


def test_each_scenario_is_checked_on_its_own_device_or_else_the_chosen_one(runs):
    small = custom_device(runs["b8"].peak.total_bytes // 2, "half of b8")
    pinned = [Scenario("A", runs["fp32 adam b4"], A100), Scenario("B", runs["b8"])]
    c = compare(pinned, device=small)
    assert c.columns[0].fit.device is A100 and c.columns[0].fit.state == "fits"
    assert c.columns[1].fit.device is small and c.columns[1].fit.state == "does not fit"
    assert c.columns[1].fit.total_bytes == fit_check(runs["b8"], small).total_bytes
    assert compare(scenarios(runs, "b8")).columns[0].fit is None  # no device anywhere: no verdict


def test_phases_line_up_on_the_common_axis(runs):
    for analysis in runs.values():
        x = phase_x(analysis.timeline)
        assert x[0] == 0 and np.all(np.diff(x) >= 0)
        for phase, start, end in analysis.timeline.phase_spans:
            k = PHASES.index(phase)
            assert x[start] == pytest.approx(k) and x[end] == pytest.approx(k + 1)
    assert phase_x(runs["inference"].timeline)[-1] == pytest.approx(1)  # forward only
    assert phase_x(runs["sgd"].timeline)[-1] == pytest.approx(3)


def test_the_overlay_keeps_each_peak(runs):
    for analysis in runs.values():
        x, y = overlay_curve(analysis, max_points=50)
        assert len(x) == len(y) <= 60 and y.max() == analysis.peak.total_bytes


def test_nothing_to_compare_is_a_clear_error():
    with pytest.raises(MemLensError, match="pin an analysis first"):
        compare([])


def test_the_csv_reads_back_to_the_same_numbers(runs, tmp_path):
    pinned = [Scenario("A, fp32", runs["fp32 adam b4"], A100), Scenario("B", runs["b8"]),
              Scenario("current", runs["inference"])]
    c = compare(pinned, device=A100)
    path = tmp_path / "compare.csv"
    write_comparison_csv(c, str(path))
    into = io.StringIO()
    write_comparison_csv(c, into)  # to an open file, as to a path
    assert path.read_bytes().decode("utf-8") == into.getvalue()
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], {(r[0], r[1]): r[2:] for r in rows[1:]}
    assert header == ["section", "item", "A, fp32", "B", "current", "B − A, fp32", "current − A, fp32"]
    assert [int(v) for v in body["peak", "total bytes"]] == [*[col.peak_bytes for col in c.columns], *c.peak_delta[1:]]
    for row in c.categories:
        assert [int(v) for v in body["category", row.category]] == [*row.bytes, *row.delta[1:]]
    for row in c.layers:
        assert [int(v) if v else None for v in body["layer", row.name]] == [*row.bytes, *row.delta[1:]]
    assert body["fit", "verdict"][:3] == [col.fit.state for col in c.columns]
    assert [int(v) for v in body["fit", "footprint bytes"][:3]] == [col.fit.total_bytes for col in c.columns]
