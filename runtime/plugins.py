"""Finding, loading and calling the plugins: the node's features and anyone else's.

Each entry point of the group `sou.plugins` names a plugin module (see runtime/hookspecs.py).
A plugin that fails to import, to migrate, to start or to plug its routes in is left out:
logged with its name and what failed, shown on /plugins, and the node serves the rest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

import pluggy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from runtime.hookspecs import PROJECT, Hooks

log = logging.getLogger(__name__)

GROUP = "sou.plugins"
NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SHIPPED = "sou"  # the distribution of the node itself: its plugins are its own features


@dataclass
class Plugin:
    """One entry point of `sou.plugins`, and what became of it in this process."""

    name: str
    distribution: str
    version: str
    module: Any = field(default=None, repr=False)
    hooks: list[str] = field(default_factory=list)
    disabled: bool = False  # by SOU_PLUGINS_DISABLED
    problem: str | None = None  # why it was left out

    @property
    def shipped(self) -> bool:
        return self.distribution == SHIPPED

    @property
    def active(self) -> bool:
        return not self.disabled and self.problem is None


class Plugins:
    """The plugins of this process: pluggy's manager and the record of each one."""

    def __init__(self) -> None:
        self.manager = pluggy.PluginManager(PROJECT)
        self.manager.add_hookspecs(Hooks)
        self.found: dict[str, Plugin] = {}
        self.settings: dict[str, Any] = {}

    @classmethod
    def discover(cls, disabled: Iterable[str] = ()) -> Plugins:
        """Every installed plugin, the node's own first, each loaded unless `disabled`."""
        plugins, off = cls(), set(disabled)
        for point, distribution in _installed():
            plugins.load(point, disabled=point.name in off, distribution=distribution)
        for name in sorted(off - plugins.found.keys()):
            log.warning("SOU_PLUGINS_DISABLED names %r, which is not an installed plugin", name)
        return plugins

    def load(
        self,
        point: EntryPoint,
        *,
        disabled: bool = False,
        distribution: tuple[str, str] | None = None,
    ) -> Plugin:
        name, version = distribution or _distribution(point)
        plugin = Plugin(point.name, name, version, disabled=disabled)
        if point.name in self.found:
            other = self.found[point.name]
            self._record(plugin, f"the name is taken by {other.distribution}")
            return plugin
        self.found[plugin.name] = plugin
        if disabled:
            log.info("plugin %s is disabled (SOU_PLUGINS_DISABLED)", plugin.name)
        elif not NAME.match(plugin.name):
            self.leave_out(plugin, "import", "a plugin's name is 1 to 32 of a-z, 0-9, _")
        else:
            self._register(plugin, point)
        return plugin

    def _register(self, plugin: Plugin, point: EntryPoint) -> None:
        try:
            module = point.load()
            self.manager.register(module, name=plugin.name)
        except Exception as exc:
            self.leave_out(plugin, "import", f"{type(exc).__name__}: {exc}")
            return
        plugin.module, plugin.hooks = module, self._hooks_of(module)
        if not plugin.hooks:
            self.leave_out(plugin, "import", f"{point.value} implements none of Sou's hooks")

    def _hooks_of(self, module: Any) -> list[str]:
        return sorted(h.name for h in self.manager.get_hookcallers(module) or ())

    def _record(self, plugin: Plugin, problem: str) -> None:
        plugin.problem = problem
        log.error("plugin %s (%s) is left out: %s", plugin.name, plugin.distribution, problem)

    def leave_out(self, plugin: Plugin, stage: str, reason: str) -> None:
        """Take a plugin out of every later call, saying why."""
        self._record(plugin, f"{stage}: {reason}")
        if self.manager.is_registered(plugin.module):
            self.manager.unregister(plugin.module)

    def active(self) -> list[Plugin]:
        return [p for p in self.found.values() if p.active]

    def each(self, hook: str, **kwargs: Any) -> Iterator[tuple[Plugin, Any]]:
        """Call `hook` of each active plugin in turn, with its result; a plugin whose hook
        raises is left out, the others go on."""
        implementations = {
            i.plugin_name: i for i in getattr(self.manager.hook, hook).get_hookimpls()
        }
        for plugin in self.active():
            implementation = implementations.get(plugin.name)
            if implementation is None:
                continue
            try:  # each with the arguments it names, as pluggy calls them
                result = implementation.function(*(kwargs[a] for a in implementation.argnames))
            except Exception as exc:
                log.exception("plugin %s failed in %s", plugin.name, hook)
                self.leave_out(plugin, hook, f"{type(exc).__name__}: {exc}")
                continue
            if result is not None:
                yield plugin, result

    def call(self, hook: str, **kwargs: Any) -> list[tuple[Plugin, Any]]:
        return list(self.each(hook, **kwargs))


@cache
def _installed() -> tuple[tuple[EntryPoint, tuple[str, str]], ...]:
    """The plugins' entry points, the node's own first, each with its distribution's name
    and version: read once per process (parsing every distribution's metadata costs more
    than the rest of opening a node)."""
    found = [(point, _distribution(point)) for point in entry_points(group=GROUP)]
    return tuple(sorted(found, key=lambda f: (f[1][0] != SHIPPED, f[0].name)))


def _distribution(point: EntryPoint) -> tuple[str, str]:
    dist = point.dist
    return (dist.name, dist.version) if dist else ("?", "?")


# -- what the node does with them, at each stage ----------------------------------------------


def make_settings(plugins: Plugins) -> None:
    """Each plugin's settings, read from the environment (SOU_<NAME>_...)."""
    for plugin, settings_class in plugins.each("sou_settings"):
        try:
            plugins.settings[plugin.name] = settings_class()
        except Exception as exc:  # a setting set wrong: say which
            plugins.leave_out(plugin, "settings", str(exc))


def migrate(engine: Engine, plugins: Plugins) -> None:
    """Run each plugin's own Alembic history, each in its own transaction and version
    table: a plugin whose migration fails is left out, its tables as they were."""
    for plugin, versions in plugins.each("sou_migrations"):
        try:
            upgrade(engine, versions, version_table(plugin.name))
        except Exception as exc:
            log.exception("the migrations of plugin %s failed", plugin.name)
            plugins.leave_out(plugin, "migrate", f"{type(exc).__name__}: {exc}")


def upgrade(
    engine: Engine, versions: Traversable | None = None, table: str = "alembic_version"
) -> None:
    """Run one Alembic history to its heads, in one transaction: the node's own (the
    revisions in migrations/versions), or a plugin's (its `versions`, its own `table`)."""
    location = str(versions) if versions is not None else None
    with engine.begin() as conn:  # env.py uses this connection (no URL in the config)
        current = MigrationContext.configure(conn, opts={"version_table": table})
        if set(current.get_current_heads()) == _heads(location):
            return  # the usual case when a node opens: nothing to run
        config = _config(location)
        config.attributes["version_table"] = table
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")


def _config(versions: str | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    if versions is not None:
        config.set_main_option("path_separator", "os")
        config.set_main_option("version_locations", versions)
    return config


@cache
def _heads(versions: str | None) -> frozenset[str]:
    """The revisions a history ends at (read once: its files do not change while running)."""
    return frozenset(ScriptDirectory.from_config(_config(versions)).get_heads())


def version_table(name: str) -> str:
    return f"alembic_version_{name}"


def escrows(plugins: Plugins) -> dict[str, Sequence[str]]:
    """The escrow accounts each plugin that holds units asks for; a plugin asking for an
    account that is not an escrow of its own is left out."""
    wanted: dict[str, Sequence[str]] = {}
    for plugin, codes in plugins.each("sou_escrows"):
        outside = [c for c in codes if not c.startswith(f"escrow:{plugin.name}:")]
        if outside:
            plugins.leave_out(
                plugin,
                "escrows",
                f"{', '.join(outside)} is not an escrow of its own (escrow:{plugin.name}:...)",
            )
        else:
            wanted[plugin.name] = list(codes)
    return wanted
