import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

SPECS = os.path.join(ROOT, "resources", "specs")
DATA = os.path.join(ROOT, "tests", "data")
