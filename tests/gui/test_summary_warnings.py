"""An analysis's warnings say what its figure may miss for this model: the peak card shows the
first one's point on screen (a projector has no hover), the tooltips have them whole."""
import os

from conftest import DATA
from engine import AnalysisRequest, analyze
from gui.summary import SummaryWidget, warning_head

LSTM = os.path.join(DATA, "user_models.py") + ":build_lstm"


def test_the_peak_card_shows_a_warning_and_its_tooltip_has_it_whole(qtbot):
    a = analyze(AnalysisRequest(model=LSTM, batch=4, optimizer="adam", device="cuda"))
    assert len(a.warnings) == 1
    summary = SummaryWidget()
    qtbot.addWidget(summary)
    summary.set_analysis(a)
    text = summary.not_included.text()
    assert "⚠ nn.LSTM on a GPU: cuDNN's RNN kernels are not modelled" in text
    assert a.warnings[0] in summary.not_included.toolTip()
    assert "not included:" in text  # the CUDA context and the like still listed first
    # A model's own text is shown as text, not markup.
    summary.set_analysis(__import__("dataclasses").replace(a, warnings=("a < b & <i>c</i>; more",)))
    assert "⚠ a &lt; b &amp; &lt;i&gt;c&lt;/i&gt;" in summary.not_included.text()
    # Without warnings, no warning line.
    summary.set_analysis(analyze(AnalysisRequest(model=LSTM, batch=4, optimizer="adam")))
    assert "⚠" not in summary.not_included.text()


def test_a_warning_line_stops_at_what_is_missing_and_counts_the_rest():
    first = "nn.X on a GPU: its kernels are not modelled; the figure follows something else entirely"
    assert warning_head([first]) == "nn.X on a GPU: its kernels are not modelled"
    assert warning_head([first, "another"]) == "nn.X on a GPU: its kernels are not modelled (+1 more)"
    long = "word " * 40
    head = warning_head([long])
    assert head.endswith("…") and len(head) <= 111 and not head[:-1].endswith(" ")
