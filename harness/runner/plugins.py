"""User plugins: modules that register methods, tasks, spaces or ops in harness's registries.

A plugin is imported in the study process *and* in every worker process (local or Dask) before
any trial runs: a method registered only in the user's own script would otherwise be unknown to
the workers, which import harness afresh. Three ways to name plugins, all merged:

* ``imports: [mypkg.methods, plugins/my_method.py]`` in a study file;
* ``--import mypkg.methods`` (repeatable) on the command line;
* the entry-point group ``harness.plugins`` of an installed package (in its pyproject.toml:
  ``[project.entry-points."harness.plugins"]`` with ``mine = "mypkg.methods"``): loaded everywhere, without being named.

A name is a dotted module path or a ``.py`` file. Workers get the folder each plugin was imported
from, so a module found via the study's working directory is found there too.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path

ENTRY_POINT_GROUP = "harness.plugins"


class PluginError(ImportError):
    """A plugin that cannot be imported, phrased for the person who named it."""


@dataclass(frozen=True)
class Plugins:
    """What a worker needs to import the same plugins as the study process: the names, and the
    folders to put on ``sys.path`` first."""

    names: tuple[str, ...] = ()
    paths: tuple[str, ...] = field(default=())

    def load(self) -> None:
        """Import every plugin (and the entry-point group) in this process; idempotent."""
        for path in self.paths:
            if path not in sys.path:
                sys.path.insert(0, path)
        for name in self.names:
            _import(name)
        load_entry_points()


def _is_file(name: str) -> bool:
    return name.endswith(".py") or "/" in name or "\\" in name


def _module_name(path: Path) -> str:
    return f"harness_plugin_{path.stem}"


def _import(name: str):
    """Import a dotted module or a ``.py`` file (as ``harness_plugin_<stem>``), once per process."""
    if not _is_file(name):
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            raise PluginError(f"plugin {name!r} cannot be imported: {exc}") from exc
    path = Path(name).resolve()
    module_name = _module_name(path)
    if module_name in sys.modules:
        return sys.modules[module_name]
    if not path.is_file():
        raise PluginError(f"plugin file {name!r} does not exist")
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginError(f"plugin file {name!r} failed on import: {type(exc).__name__}: {exc}") from exc
    return module


_LOADED_ENTRY_POINTS: set[str] = set()


def load_entry_points() -> list[str]:
    """Import every module of the ``harness.plugins`` entry-point group (once per process)."""
    loaded = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.value in _LOADED_ENTRY_POINTS:
            continue
        try:
            ep.load()
        except Exception as exc:
            raise PluginError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}) failed: {exc}") from exc
        _LOADED_ENTRY_POINTS.add(ep.value)
        loaded.append(ep.value)
    return loaded


def load_plugins(names: list[str] | tuple[str, ...]) -> Plugins:
    """Import ``names`` here (file paths resolved against the working directory) and return what a
    worker process needs to import the same modules."""
    resolved, paths = [], []
    for name in dict.fromkeys(names):
        if _is_file(name):
            resolved.append(str(Path(name).resolve()))
            _import(resolved[-1])
            continue
        module = _import(name)
        resolved.append(name)
        root = _import_root(module, name)
        if root and root not in paths:
            paths.append(root)
    plugins = Plugins(tuple(resolved), tuple(paths))
    load_entry_points()
    return plugins


def _import_root(module, name: str) -> str | None:
    """The folder that holds the top-level package of ``module`` (so ``name`` imports from it)."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    path = Path(file).resolve()
    depth = name.count(".") + (1 if path.name == "__init__.py" else 0)
    return str(path.parents[depth])
