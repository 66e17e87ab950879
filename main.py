"""MemLens from a source checkout: `python main.py` opens the desktop app; `python main.py analyze ...`
is the CLI (installed, both are the `memlens` command: gui/app.py:run)."""
import sys

from gui.app import dispatch

if __name__ == "__main__":
    sys.exit(dispatch(sys.argv[1:]))
