"""Property: any YAML/JSON document, and any mutation of a shipped spec, gives either a valid
analysis or a MemLensError with a one-line message: never another exception, never more than
SECONDS per example, never more than MEGABYTES of extra peak memory.

`make test` runs a bounded number of examples (under a minute); `make fuzz` runs 10,000 or more
with a printed seed (MEMLENS_FUZZ_EXAMPLES, and pytest's --hypothesis-seed to replay).
"""
import json
import os
import pathlib
import resource
import tempfile
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SPECS
from engine import AnalysisRequest, analyze
from engine.errors import MemLensError

EXAMPLES = int(os.environ.get("MEMLENS_FUZZ_EXAMPLES", "50"))  # per property
SECONDS = 30.0  # generous: two shared CPU cores; a typical example takes milliseconds
MEGABYTES = 512
SHIPPED = ["small_cnn.yaml", "tiny_transformer.yaml", "vgg16.yaml"]
LAYER_NAMES = ["conv2d", "conv", "linear", "fc", "maxpool", "avgpool", "adaptiveavgpool", "batchnorm", "layernorm",
               "groupnorm", "relu", "gelu", "softmax", "dropout", "flatten", "embedding", "attention", "transformer",
               "repeat", "residual", "type", "name", "layers", "shortcut"]
ARG_NAMES = ["out", "kernel", "stride", "padding", "dilation", "groups", "bias", "size", "eps", "slope", "dim", "p",
             "vocab", "heads", "mlp", "dropout", "activation", "norm_first", "inplace", "type", "name", "layers"]

COUNT = {"examples": 0}
FOLDER = pathlib.Path(tempfile.mkdtemp(prefix="memlens-fuzz-"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=False, database=None,
                suppress_health_check=list(HealthCheck))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 70), st.sampled_from([0, -1, 2**31, 10**9, 10**20, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12), st.sampled_from(LAYER_NAMES + ARG_NAMES),
)
documents = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=6),
                            st.dictionaries(st.one_of(st.sampled_from(LAYER_NAMES + ARG_NAMES + ["input"]), st.text(max_size=6)),
                                            inner, max_size=5)),
    max_leaves=30,
)
small_ints = st.one_of(st.integers(1, 16), st.sampled_from([0, -2, 10**9, 2**40, 3.5, "4", True, None]))
layer = st.one_of(
    st.sampled_from(LAYER_NAMES),
    st.builds(lambda kind, args: {kind: args}, st.sampled_from(LAYER_NAMES),
              st.dictionaries(st.sampled_from(ARG_NAMES), st.one_of(small_ints, documents), max_size=4)),
    st.builds(lambda n, body: {"repeat": n, "layers": body}, small_ints, st.lists(st.sampled_from(LAYER_NAMES), max_size=3)),
    st.builds(lambda body: {"residual": body}, st.lists(st.sampled_from(["relu", "gelu", {"linear": {"out": 8}}]), max_size=3)),
)
spec_like = st.fixed_dictionaries(
    {"input": st.one_of(st.lists(small_ints, min_size=1, max_size=4), documents),
     "layers": st.one_of(st.lists(layer, max_size=8), documents)},
    optional={"input_dtype": st.sampled_from(["float", "long", "int", 3]), "name": scalars},
)


def _shipped(name):
    with open(os.path.join(SPECS, name)) as f:
        return f.read()


@st.composite
def mutated_spec(draw):
    """A shipped spec with one structural mutation (a value replaced, a key dropped, a list item
    duplicated) or a few text edits (characters inserted, deleted, lines swapped)."""
    text = _shipped(draw(st.sampled_from(SHIPPED)))
    if draw(st.booleans()):
        doc = yaml.safe_load(text)
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        parent, key = _resolve(doc, path)
        action = draw(st.sampled_from(["replace", "drop", "duplicate"]))
        if action == "replace" or not isinstance(parent, (list, dict)):
            parent[key] = draw(documents)
        elif action == "drop":
            del parent[key]
        elif isinstance(parent, list):
            parent.insert(key, parent[key])
        else:
            parent[draw(st.sampled_from(ARG_NAMES))] = parent[key]
        return yaml.safe_dump(doc) if draw(st.booleans()) else json.dumps(doc)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(text)))
        edit = draw(st.sampled_from(["insert", "delete", "swap"]))
        if edit == "insert":
            text = text[:i] + draw(st.text(alphabet="[]{}:-,&*!# \n'\"0123456789abx", max_size=6)) + text[i:]
        elif edit == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        else:
            lines = text.splitlines()
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
    return text


def _paths(node, prefix=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _resolve(doc, path):
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    return parent, path[-1]


@pytest.fixture(scope="module", autouse=True)
def report_count():
    yield
    print(f"\nfuzz: {COUNT['examples']} examples ({EXAMPLES} per property)")


def check(text, mode: str = "train") -> None:
    COUNT["examples"] += 1
    path = FOLDER / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass") if isinstance(text, str) else path.write_bytes(text)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        a = analyze(AnalysisRequest(model=str(path), batch=2, mode=mode, optimizer="adam" if mode == "train" else None))
    except MemLensError as e:
        message = str(e)
        assert message.strip() and "\n" not in message, repr(message)
    else:
        assert a.layers and a.peak.total_bytes > 0
        assert sum(a.peak.breakdown.values()) == a.peak.total_bytes
        assert sum(layer.params for layer in a.layers) == a.parameters
    elapsed = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert elapsed < SECONDS, f"{elapsed:.1f} s"
    assert grown_mb < MEGABYTES, f"{grown_mb:.0f} MB"


@FUZZ
@given(doc=documents, as_json=st.booleans())
def test_any_document(doc, as_json):
    text = json.dumps(doc, allow_nan=True) if as_json else yaml.safe_dump(doc)
    check(text)


@FUZZ
@given(doc=spec_like, as_json=st.booleans(), mode=st.sampled_from(["train", "inference"]))
def test_any_spec_shaped_document(doc, as_json, mode):
    text = json.dumps(doc, allow_nan=True) if as_json else yaml.safe_dump(doc)
    check(text, mode)


@FUZZ
@given(text=mutated_spec(), mode=st.sampled_from(["train", "inference"]))
def test_any_mutation_of_a_shipped_spec(text, mode):
    check(text, mode)


@FUZZ
@given(data=st.binary(max_size=200))
def test_any_bytes(data):
    check(data)
