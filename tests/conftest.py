import os
import sys

# OpenMP threads that finish a parallel region spin, waiting for the next one (libgomp's default).
# Test files run side by side, each with a thread per core, beside the CLI and rank processes
# they start: spinning threads then steal the cores the others need. A resnet18 step took 7x the
# wall time for it, two processes on two cores. Sleeping waiters change no allocation. Set before
# torch loads, here and in every process a test starts (they inherit the environment).
if "torch" not in sys.modules:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


def run_main_concurrently(commands: dict, timeout: float = 300) -> dict:
    """`python main.py ARGS...` for each named argument list, each in its own process, two at a
    time, from the repository root: a CLI test's cost is one core's worth of torch start-up, so a
    module's runs started together take half as long on two cores as the same runs in turn."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    def run(argv):
        return subprocess.run([sys.executable, "main.py", *argv], cwd=ROOT, capture_output=True, text=True,
                              timeout=timeout)

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = dict(zip(commands, pool.map(run, commands.values())))
    return done


def assert_largest_batch_is_exact(request, device):
    """The planner's largest batch for `request` on `device` fits and the next does not, against
    independent analyses at b and b + 1; returns what the planner found."""
    from engine import analyze
    from engine.footprint import fit_check
    from engine.planner import max_batch

    found = max_batch(request, device)
    b = found.value
    at_b, at_next = (fit_check(analyze(request.replace(batch=v)), device).total_bytes for v in (b, b + 1))
    assert at_b <= device.capacity_bytes < at_next
    assert (found.peak_bytes, found.next_peak_bytes) == (at_b, at_next)
    return found
