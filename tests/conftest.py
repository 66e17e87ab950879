import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SPECS = os.path.join(ROOT, "resources", "specs")
DATA = os.path.join(ROOT, "tests", "data")

# Qt settings (recent files) go to a throwaway folder, never the user's own configuration.
import tempfile  # noqa: E402

os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="memlens-test-config-")

# ... and so does the last-analysis cache the window reopens on (gui/analysis_cache.py).
os.environ["MEMLENS_CACHE_DIR"] = tempfile.mkdtemp(prefix="memlens-test-cache-")
