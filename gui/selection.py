"""Which layer the user has chosen, and which one they are only looking at: one model every view
subscribes to (napari's layer selection), so no view ever reaches into another.

*Select* is a deliberate choice (a click in the diagram, table or lifetimes): views scroll to it,
and the diagram may expand a collapsed group to show it. *Preview* is transient (hovering a block,
scrubbing the timeline): views highlight it lightly and never restructure themselves for it (no
group expands, nothing scrolls). Clearing the preview returns every view to the selection.
"""
from __future__ import annotations

from PySide6.QtCore import QObject, Signal


class SelectionModel(QObject):
    """The selected layer and the previewed layer, by layer name ('' for none)."""

    sig_selected = Signal(str)
    """The selected layer changed (name, or '' when the selection was cleared)."""
    sig_previewed = Signal(str)
    """The previewed layer changed (name, or '' when the preview ended)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._selected = ""
        self._previewed = ""
        self._known: set[str] | None = None

    # ---- Public API
    @property
    def selected(self) -> str:
        return self._selected

    @property
    def previewed(self) -> str:
        return self._previewed

    def set_layers(self, names) -> None:
        """The layers of the analysis now shown; a selection of a layer not among them is cleared."""
        self._known = set(names)
        if self._previewed and self._previewed not in self._known:
            self.preview("")
        if self._selected and self._selected not in self._known:
            self.select("")

    def select(self, name: str) -> None:
        """Choose a layer ('' clears). Unknown names are ignored; re-selecting emits nothing."""
        name = name or ""
        if name and self._known is not None and name not in self._known:
            return
        if name == self._selected:
            return
        self._selected = name
        self.sig_selected.emit(name)

    def preview(self, name: str) -> None:
        """Look at a layer without choosing it ('' ends the preview)."""
        name = name or ""
        if name and self._known is not None and name not in self._known:
            return
        if name == self._previewed:
            return
        self._previewed = name
        self.sig_previewed.emit(name)

    def clear(self) -> None:
        self.preview("")
        self.select("")
