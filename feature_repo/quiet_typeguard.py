"""Feast's classes without typeguard's instrumentation: `import feast` in about 3 s of CPU instead of 9.

Feast decorates its model classes (FeatureView, Entity, Field, the data sources, ...) with
typeguard's `@typechecked`. typeguard 4 instruments every method of such a class when the class is
defined, and for each method it reads, parses and compiles the whole module's source again
(typeguard/_decorators.py, `instrument`): 22 classes, hundreds of methods, about 6 s of CPU in every
process that imports Feast (the features, training and serving services, the CLI's replays, each
test session; bench/feast_import.py). The instrumented methods also check their arguments' types on
every call. Our calls into Feast are checked statically by mypy instead (Feast ships its types).

`leave_feast_uninstrumented()` arranges for `typeguard.typechecked` to return Feast's own classes and
functions as they are, and to instrument anything else as before. It must run before Feast is first
imported: the first-party packages (services, infra, tests, bench, workbench, feature_repo) import
this package first, so it does; when Feast is already in the process it changes nothing. The wrap
itself waits for Feast's first import (a finder on `sys.meta_path`), so a process that never loads
Feast does not import typeguard either (0.1-0.2 s).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

_MARK = "_mlops_leaves_feast_alone"


class _BeforeFeast:
    """Wraps typeguard's decorator when `feast` is about to be imported; finds nothing itself. It
    stays on `sys.meta_path` (removing a finder while the import system iterates the list would skip
    the next one) and answers every later lookup with None at once. A plain class: the import system
    only calls `find_spec`, and importlib.abc would cost every process 15 ms."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> None:
        if fullname == "feast" and "feast" not in sys.modules:
            _wrap_typechecked()
        return None


def leave_feast_uninstrumented() -> bool:
    """True when Feast's classes will load uninstrumented (or already did); False when Feast was
    imported before this ran (its classes are instrumented; nothing is changed)."""
    if "feast" in sys.modules:
        typeguard = sys.modules.get("typeguard")
        return bool(typeguard is not None and getattr(typeguard.typechecked, _MARK, False))
    if not any(isinstance(finder, _BeforeFeast) for finder in sys.meta_path):
        sys.meta_path.insert(0, _BeforeFeast())
    return True


def _wrap_typechecked() -> None:
    import typeguard

    original = typeguard.typechecked
    if getattr(original, _MARK, False):
        return

    def typechecked(target: Any = None, **options: Any) -> Any:
        if target is None:  # @typechecked(...) with options: the decorator comes back first
            return lambda decorated: typechecked(decorated, **options)
        if str(getattr(target, "__module__", "")).split(".")[0] == "feast":
            return target
        return original(target, **options)

    setattr(typechecked, _MARK, True)
    typechecked.__doc__ = original.__doc__
    typeguard.typechecked = typechecked
