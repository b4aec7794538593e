"""The vendored GenAI names (tests/support/genai_semconv.py) match the pinned semconv package they were read from."""

from __future__ import annotations

import ast
import inspect
import re
from importlib.metadata import version

import pytest

from tests.support import genai_semconv as vendored

pytest.importorskip("opentelemetry.semconv")
pytest.importorskip("opentelemetry.sdk")

from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import Histogram, InMemoryMetricReader  # noqa: E402
from opentelemetry.semconv._incubating.attributes import gen_ai_attributes  # noqa: E402
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics  # noqa: E402
from opentelemetry.semconv.schemas import Schemas  # noqa: E402


def test_the_installed_package_is_the_vendored_release() -> None:
    installed = version(vendored.SEMCONV_PACKAGE)
    assert installed == vendored.SEMCONV_VERSION, (
        f"{vendored.SEMCONV_PACKAGE} {installed} is installed, the names were vendored from {vendored.SEMCONV_VERSION}: "
        "vendor tests/support/genai_semconv.py again from the new release (or pin the old one)"
    )
    newest = max(Schemas, key=lambda schema: tuple(int(part) for part in schema.value.rsplit("/", 1)[1].split(".")))
    assert newest.value == vendored.SEMCONV_NEWEST_SCHEMA_URL


def test_every_metric_is_the_packages_histogram_with_its_unit() -> None:
    """Each create_* of the package, on a real SDK meter, exports what the vendored table says."""
    reader = InMemoryMetricReader()
    meter = MeterProvider(metric_readers=[reader]).get_meter("semconv-check")
    creators = [fn for name, fn in inspect.getmembers(gen_ai_metrics, inspect.isfunction) if name.startswith("create_")]
    for create in creators:
        create(meter).record(1)
    data = reader.get_metrics_data()
    assert data is not None
    exported = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert set(exported) == set(vendored.METRICS)
    for name, spec in vendored.METRICS.items():
        metric = exported[name]
        assert (metric.unit, metric.description) == (spec.unit, spec.description), name
        assert spec.instrument == "histogram" and isinstance(metric.data, Histogram), name
        assert getattr(gen_ai_metrics, spec.constant) == name
        assert name.startswith(f"gen_ai.{spec.side}.")


def test_the_missing_metrics_are_missing() -> None:
    names = {value for key, value in vars(gen_ai_metrics).items() if key.isupper() and isinstance(value, str)}
    assert names == set(vendored.METRICS)
    assert not names & set(vendored.NOT_IN_PINNED_RELEASE)


def _constants_with_docs() -> dict[str, tuple[str, str]]:
    """The module's GEN_AI_* constants: name -> (value, the docstring under it)."""
    body = ast.parse(inspect.getsource(gen_ai_attributes)).body
    found = {}
    for node, after in zip(body, body[1:] + [None]):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id.startswith("GEN_AI_"):
            assert isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            doc = after.value.value if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) else ""
            found[node.target.id] = (node.value.value, str(doc))
    return found


def test_every_attribute_and_its_replacement() -> None:
    constants = _constants_with_docs()
    assert {key: value for key, (value, _) in constants.items()} == vendored.ATTRIBUTES
    replaced: dict[str, str | None] = {}
    for value, doc in constants.values():
        if match := re.search(r"Replaced by `([^`]+)`", doc):
            replaced[value] = match.group(1)
        elif "Removed, no replacement" in doc:
            replaced[value] = None
    assert replaced == vendored.REPLACED
    moved = [value for value, doc in constants.values() if "semantic-conventions-genai" in doc or "Removed" in doc]
    assert len(moved) == len(constants), "every gen_ai name of this release points to the GenAI repository"


def test_the_names_issue_27_asks_for() -> None:
    for name in (
        vendored.OPERATION_NAME,
        vendored.REQUEST_STREAM,
        vendored.RESPONSE_TIME_TO_FIRST_CHUNK,
        vendored.REQUEST_MODEL,
        vendored.PROVIDER_NAME,
        vendored.USAGE_INPUT_TOKENS,
        vendored.USAGE_OUTPUT_TOKENS,
        vendored.TOOL_NAME,
        vendored.TOKEN_TYPE,
    ):
        assert name in vendored.ATTRIBUTES.values() and name not in vendored.REPLACED, name


def test_the_enum_values() -> None:
    assert vendored.OPERATION_NAMES == tuple(v.value for v in gen_ai_attributes.GenAiOperationNameValues)
    assert vendored.TOKEN_TYPES == tuple(dict.fromkeys(v.value for v in gen_ai_attributes.GenAiTokenTypeValues.__members__.values()))
    assert vendored.PROVIDER_NAMES == tuple(v.value for v in gen_ai_attributes.GenAiProviderNameValues)
