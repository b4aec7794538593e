"""One error vocabulary (uncut.errors): every exception derives from UncutError, and every outcome and every
error type the code can produce is listed there and documented. The sources are read with ``ast``, so a new
outcome or error type written anywhere under uncut/ is found; each check is also shown to fail on a violation."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import pytest

import uncut
from uncut import errors
from uncut.errors import ERROR_TYPES, OUTCOMES, UncutError

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "uncut"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# BaseException subclasses that are control flow, not errors: no `except Exception` may swallow them.
SIGNALS = {"uncut.callbacks.StreamCancelled", "uncut.stall.Stalled"}


def sources() -> dict[str, str]:
    return {str(path.relative_to(ROOT)): path.read_text(encoding="utf-8") for path in sorted(PACKAGE.rglob("*.py"))}


def docs_text() -> str:
    return "\n".join(path.read_text(encoding="utf-8") for path in DOCS if path.exists())


# -- exceptions ------------------------------------------------------------------------------------


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module under uncut/ (imported, so defined where its module says)."""
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(uncut.__path__, "uncut."):
        try:
            module = importlib.import_module(info.name)
        except Exception:  # noqa: BLE001 - an extra not installed, or Django unconfigured: the reading net below still sees it
            continue
        for value in list(vars(module).values()):
            # type(value), not isinstance: a lazy object (Django's settings) must not be touched
            if issubclass(type(value), type) and issubclass(value, BaseException) and value.__module__.startswith("uncut"):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def defined_exception_names(files: dict[str, str]) -> set[str]:
    """The names of classes the sources define with an exception-looking base (a second net, by reading)."""
    names = set()
    for text in files.values():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and any(
                (isinstance(base, ast.Name) and (base.id.endswith(("Error", "Exception")) or base.id in ("UncutError",)))
                or (isinstance(base, ast.Attribute) and base.attr.endswith(("Error", "Exception")))
                for base in node.bases
            ):
                names.add(node.name)
    return names


def not_under_the_base(classes: dict[str, type[BaseException]]) -> list[str]:
    return sorted(name for name, cls in classes.items() if name not in SIGNALS and not issubclass(cls, UncutError))


def test_every_exception_derives_from_uncut_error() -> None:
    classes = exception_classes()
    assert len(classes) >= 20, sorted(classes)
    assert not_under_the_base(classes) == []
    # The reading net finds nothing the import net missed.
    by_name = {name.rsplit(".", 1)[1] for name in classes}
    assert defined_exception_names(sources()) <= by_name


def test_the_signals_are_base_exceptions_not_errors() -> None:
    classes = exception_classes()
    assert SIGNALS <= set(classes)
    for name in SIGNALS:
        assert not issubclass(classes[name], Exception) and not issubclass(classes[name], UncutError)


def test_the_old_bases_and_the_old_homes_still_hold() -> None:
    from uncut.agent_server.wire import ProtocolError
    from uncut.callbacks import AsyncCallbackError
    from uncut.eventlog import LogClosedError, StoreUnavailable
    from uncut.options import OptionError
    from uncut.relay import StreamAborted
    from uncut.scripted import ScriptedModelError
    from uncut.streams import StreamNotFound, StreamRefused
    from uncut.threads import ThreadBusy, ThreadError
    from uncut.ui_request import InvalidUIRequest

    assert issubclass(StreamNotFound, LookupError) and issubclass(OptionError, ValueError)
    assert issubclass(InvalidUIRequest, ValueError) and issubclass(AsyncCallbackError, TypeError)
    assert all(issubclass(c, RuntimeError) for c in (StreamAborted, LogClosedError, StoreUnavailable, ScriptedModelError))
    assert issubclass(ThreadBusy, ThreadError)
    for cls in (ProtocolError, StreamRefused, ThreadError, StreamNotFound):
        assert getattr(errors, cls.__name__) is cls


def test_the_docstring_draws_every_exception() -> None:
    doc = errors.__doc__ or ""
    drawn = {
        name.rsplit(".", 1)[1]
        for name, cls in exception_classes().items()
        if name not in SIGNALS and not name.rsplit(".", 1)[1].startswith("_")
    }
    assert [name for name in sorted(drawn) if name not in doc] == []


def test_an_exception_outside_the_base_is_found() -> None:
    class LoneError(RuntimeError):
        pass

    classes = {**exception_classes(), "uncut.somewhere.LoneError": LoneError}
    assert not_under_the_base(classes) == ["uncut.somewhere.LoneError"]
    assert "LoneError" in defined_exception_names({"x.py": "class LoneError(RuntimeError):\n    pass\n"})


# -- outcomes --------------------------------------------------------------------------------------


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def _is_outcome(target: ast.AST) -> bool:
    return (isinstance(target, ast.Name) and target.id == "outcome") or (isinstance(target, ast.Attribute) and target.attr == "outcome")


def produced_outcomes(files: dict[str, str]) -> set[str]:
    """Every outcome string the code can produce: ``outcome="..."`` arguments and defaults, ``x.outcome = ...``
    assignments and comparisons, the relay's map of error types to outcomes, and the metrics' ``rejected``."""
    found: set[str] = set()
    for text in files.values():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.keyword) and node.arg == "outcome":
                found |= _strings(node.value)
            elif isinstance(node, ast.Assign) and any(_is_outcome(t) for t in node.targets):
                found |= _strings(node.value)
            elif isinstance(node, ast.AnnAssign) and _is_outcome(node.target) and node.value is not None:
                found |= _strings(node.value)
            elif isinstance(node, ast.Compare) and _is_outcome(node.left):
                for comparator in node.comparators:
                    found |= _strings(comparator)
            elif isinstance(node, ast.arguments):  # def cancel(..., outcome: str = "cancelled")
                positional = node.posonlyargs + node.args
                for arg, default in zip(positional[len(positional) - len(node.defaults) :], node.defaults):
                    if arg.arg == "outcome":
                        found |= _strings(default)
                for arg, default in zip(node.kwonlyargs, node.kw_defaults):
                    if arg.arg == "outcome" and default is not None:
                        found |= _strings(default)
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "labels":
                found |= {s for s in _strings(node) if s in OUTCOMES or s == "rejected"}  # streams_finished{surface,outcome}
    found |= set(errors.OUTCOME_OF_ERROR.values())
    return found


def test_the_scan_finds_the_outcomes_it_should() -> None:
    found = produced_outcomes(sources())
    # A floor: the scan must see the relay's, the producer's and the metrics' outcomes, or it proves nothing.
    assert {
        "completed",
        "client_disconnected",
        "slow_client",
        "server_shutdown",
        "timeout",
        "abandoned",
        "rejected",
        "upstream_error",
        "store_unavailable",
        "too_large",
        "server_error",
    } <= found


def test_every_outcome_is_listed_and_documented() -> None:
    found = produced_outcomes(sources())
    assert sorted(found - set(OUTCOMES)) == [], "add it to uncut.errors.OUTCOMES"
    text = docs_text()
    assert [o for o in OUTCOMES if f"`{o}`" not in text] == [], "document it (docs/library.md: outcomes)"
    assert all(OUTCOMES.values())


def test_a_new_outcome_is_found() -> None:
    planted = {**sources(), "uncut/planted.py": 'def end(run):\n    run.cancel({}, outcome="vanished")\n    run.outcome = "evaporated"\n'}
    assert sorted(produced_outcomes(planted) - set(OUTCOMES)) == ["evaporated", "vanished"]


# -- error types on the wire ----------------------------------------------------------------------------


def produced_error_types(files: dict[str, str]) -> set[str]:
    """Every error type the code puts on the wire: ``error("type", ...)`` calls, ``{"error": {"type": ...}}``
    and ``{"type": ..., "retryable": ...}`` literals, a ``code = "..."`` on a ThreadError, and the refusals."""
    found: set[str] = set()
    for text in files.values():
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "error" and node.args:
                found |= {a.value for a in node.args[:1] if isinstance(a, ast.Constant) and isinstance(a.value, str)}
            elif isinstance(node, ast.Dict):
                keys = {k.value: v for k, v in zip(node.keys, node.values) if isinstance(k, ast.Constant)}
                inner = keys.get("error")
                if isinstance(inner, ast.Dict):
                    keys = {k.value: v for k, v in zip(inner.keys, inner.values) if isinstance(k, ast.Constant)}
                elif "retryable" not in keys:
                    continue
                kind = keys.get("type")
                if isinstance(kind, ast.Constant) and isinstance(kind.value, str):
                    found.add(kind.value)
    found |= {cls.code for cls in exception_classes().values() if issubclass(cls, errors.ThreadError)}
    found |= {errors.OVERLOADED, errors.CLIENT_LIMIT, errors.READER_LIMIT}
    return found


def test_the_scan_finds_the_error_types_it_should() -> None:
    found = produced_error_types(sources())
    assert {
        "cancelled",
        "timeout",
        "too_large",
        "server_shutdown",
        "store_unavailable",
        "producer_lost",
        "server_error",
        "thread_lease_lost",
        "upstream_timeout",
        "rate_limited",
        "client_disconnected",
        "thread_busy",
        "overloaded",
    } <= found


def test_every_error_type_is_listed_and_documented() -> None:
    found = produced_error_types(sources())
    assert sorted(found - set(ERROR_TYPES)) == [], "add it to uncut.errors.ERROR_TYPES"
    text = docs_text()
    assert [t for t in ERROR_TYPES if f"`{t}`" not in text] == [], "document it (docs/library.md: errors on the wire)"


def test_a_new_error_type_is_found() -> None:
    planted = {
        **sources(),
        "uncut/planted.py": (
            'GONE = {"error": {"type": "gone_fishing", "message": "out", "retryable": False}}\n'
            'LATE = error("too_late", "late", True)\n'
            'BARE = {"type": "bare_failure", "message": "m", "retryable": True}\n'
        ),
    }
    assert sorted(produced_error_types(planted) - set(ERROR_TYPES)) == ["bare_failure", "gone_fishing", "too_late"]


def test_the_body_builder_refuses_an_unlisted_type() -> None:
    with pytest.raises(ValueError, match="ERROR_TYPES"):
        errors.error("gone_fishing", "out", False)
    assert errors.error("cancelled", "m", False) == {"error": {"type": "cancelled", "message": "m", "retryable": False}}
