"""Opening the node: settings -> engine -> migrated schema -> ledger, keys, poster, sealer.

Several nodes may serve one database: they must hold the same keys, those the log
registers. A node whose key files are not the log's is refused at opening, and whenever it
is about to sign with one (`Node.signing_key`): it would sign what nobody can verify.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect

from ledger import fee_rules
from ledger import repository as ledger_repo
from ledger.chart import SYSTEM_ACCOUNTS
from ledger.operations import NODE, PLUGIN
from ledger.poster import Poster
from ledger.sealer import Sealer
from ledger.service import Ledger
from ledger.signing import SigningKey
from runtime import plugins as plugging
from runtime import witness
from runtime.database import AdvisoryTurns, Turns, make_engine
from runtime.jobs import Job, Scheduler, SchedulerThread, process_owner
from runtime.keystore import KeyFileError, key_path, load_key, private_dir, save_key
from runtime.notices import Notices
from runtime.plugins import Plugins
from runtime.reactions import reaction_job
from runtime.sealer import SealerThread
from runtime.settings import Settings

if TYPE_CHECKING:
    from stripe import StripeClient

log = logging.getLogger(__name__)

# How long a signing key, once found to be the log's, is used before being checked again:
# a key revoked meanwhile (by another node) stops being used within that time.
KEY_CHECK_S = 2.0


class KeysMismatch(KeyFileError):
    """A key this node would sign with (the node key, a role key) is not a key the log
    registers for its owner and has not revoked: the data directory's keys are not those
    of the node that made this database. Nothing is signed with it."""


def migrate(engine: Engine) -> None:
    """Bring the node's own schema to its latest revision: the only way its tables are ever
    made (the plugins' follow: `plug_in`)."""
    plugging.upgrade(engine)


def is_initialised(engine: Engine) -> bool:
    return inspect(engine).has_table("ledger_meta")


@dataclass
class Node:
    settings: Settings
    engine: Engine
    ledger: Ledger
    node_key: SigningKey
    poster: Poster | None = None
    sealer: SealerThread | None = None
    # What the features keep between requests. A cache is forgotten by the one function
    # that changes what it holds (members.service), never by that function's callers.
    # Who a token or session cookie stands for, for a moment (members.access: its records,
    # which this floor below the members cannot name).
    callers: dict[tuple[str, bytes], Any] = field(default_factory=dict, repr=False)
    # Accounts found to be wallets (wallet_api.service): a member never loses their wallet.
    wallet_accounts: set[str] = field(default_factory=set, repr=False)
    # The lock over card payments (wallet_api.cards.service), made at its first use.
    card_payments_turns: AdvisoryTurns | Turns | None = field(default=None, repr=False)
    # The Stripe client, and the (secret key, API base) it was made with.
    stripe_client: tuple[tuple[str, str], StripeClient] | None = field(default=None, repr=False)
    # The plugins of this process (the node's own features among them), and the thread
    # running their jobs and reactions once started.
    plugins: Plugins = field(default_factory=Plugins, repr=False)
    scheduler: SchedulerThread | None = None
    # Wake-ups between this node's processes (runtime/notices.py), made at first use.
    _notices: Notices | None = field(default=None, repr=False)
    # owner -> (key, checked against the log until this time.monotonic())
    _signers: dict[str, tuple[SigningKey, float]] = field(default_factory=dict, repr=False)

    @property
    def notices(self) -> Notices:
        if self._notices is None:
            self._notices = Notices(self.engine)
        return self._notices

    def plugin_settings(self, name: str) -> Any:
        """The settings of plugin `name` (its `sou_settings` class, as read at start)."""
        return self.plugins.settings.get(name)

    def jobs(self) -> list[Job]:
        """The active plugins' scheduled jobs, and one job delivering each of their
        reactions. A plugin's jobs and reactions are named `<plugin>.<what>`: one whose
        names are not its own, or repeat, is left out."""
        found: dict[str, Job] = {}
        for hook in ("sou_jobs", "sou_reactions"):
            for plugin, given in self.plugins.each(hook, node=self):
                if hook == "sou_reactions":
                    names = [r.name for r in given]
                    given = [reaction_job(r) for r in given]
                else:
                    names = [j.name for j in given]
                stray = [n for n in names if not n.startswith(f"{plugin.name}.")]
                twice = [j.name for j in given if j.name in found]
                if stray or twice:
                    why = f"not named {plugin.name}.<what>: {stray}" if stray else f"twice: {twice}"
                    self.plugins.leave_out(plugin, hook, why)
                    continue
                found.update((j.name, j) for j in given)
        return [j for j in found.values() if self._still_active(j)]

    def _still_active(self, job: Job) -> bool:
        owner = job.name.removeprefix("reactions.").split(".", 1)[0]
        plugin = self.plugins.found.get(owner)
        return plugin is not None and plugin.active

    def signing_key(self, owner: str) -> SigningKey:
        """The key this node signs with as `owner` (`node`, `role:treasurer`,
        `role:office:<id>`...), found to be the log's registered, unrevoked key for it at
        most KEY_CHECK_S seconds ago. Raises KeysMismatch rather than hand out another."""
        now = time.monotonic()
        held = self._signers.get(owner)
        if held is not None and now < held[1]:
            return held[0]
        try:
            key = self.node_key if owner == NODE else self._role_key(owner)
            self._check_registered(owner, key)
        except KeyFileError as exc:  # a key that is not the log's, or a file unreadable
            log.error("nothing is signed as %s: %s", owner, exc)
            raise
        self._signers[owner] = (key, now + KEY_CHECK_S)
        return key

    def _role_key(self, role: str) -> SigningKey:
        path = key_path(self.settings.keys_dir, role)
        if not path.exists():
            with self.ledger.reading() as conn:
                expected = _registered(conn).get(role, {})
            raise KeysMismatch(
                f"no key file at {path} for {role}, whose key the log registers "
                f"({_listed(expected)}). {_copy_keys(self.settings)}"
            )
        return load_key(path)

    def _check_registered(self, owner: str, key: SigningKey) -> None:
        with self.ledger.reading() as conn:
            row = ledger_repo.key_row(conn, key.key_id)
            if (
                row is None
                or row["owner"] != owner
                or row["revoked_ms"] is not None
                or bytes(row["public_key"]) != key.public_key
            ):
                raise _mismatch(self.settings, owner, key, _registered(conn))

    def new_sealer(self) -> Sealer:
        """A sealer that also keeps each new checkpoint in the data directory."""
        data_dir = self.settings.data_dir
        return Sealer(
            self.engine,
            self.node_key,
            self.ledger.origin,
            on_checkpoint=lambda sealed: witness.remember(data_dir, sealed),
        )

    def start(self) -> Node:
        """Start the background writers: the group-commit poster, which seals between
        batches, and the sealer thread, which seals what others commit (key events,
        other processes)."""
        sealer = self.new_sealer()
        interval = self.settings.seal_interval
        self.sealer = SealerThread(sealer, interval).start()
        self.poster = Poster(self.ledger, sealer=sealer, seal_every=interval).start()
        jobs = self.jobs()
        if jobs:
            scheduler = Scheduler(self.engine, jobs, owner=process_owner())
            self.scheduler = SchedulerThread(scheduler).start()
        return self

    def close(self) -> None:
        if self._notices is not None:
            self._notices.close()
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.poster is not None:
            self.poster.stop()
        if self.sealer is not None:
            self.sealer.stop()
        self.engine.dispose()


def engine_for(settings: Settings) -> Engine:
    if not settings.database_url:
        private_dir(settings.data_dir)
    return make_engine(settings.resolved_database_url, pool_size=settings.pool_size)


def open_node(settings: Settings, plugins: Plugins | None = None) -> Node:
    """Open an initialised node with its plugins (those installed, unless given). Raises
    RuntimeError (not initialised), KeyFileError (no usable node key file) and
    KeysMismatch (keys that are not the log's) before writing anything."""
    engine = engine_for(settings)
    try:
        if not is_initialised(engine):
            raise RuntimeError("this node is not initialised yet: run `sou init`")
        node_key = _node_key(settings)
        with engine.connect().execution_options(sqlite_deferred=True) as conn:
            check_keys(settings, conn, node_key)
        migrate(engine)
    except BaseException:
        engine.dispose()
        raise
    ledger = Ledger(engine, max_amount=settings.max_amount, max_ttl_s=settings.order_max_ttl)
    ledger.ensure_accounts(SYSTEM_ACCOUNTS)  # accounts that later versions added to the chart
    node = Node(settings, engine, ledger, node_key)
    record_fee_rule(node, time.time)
    plug_in(node, plugins if plugins is not None else Plugins.discover(settings.disabled_plugins))
    return node


def record_fee_rule(node: Node, clock: Callable[[], float]) -> None:
    """Make the reconversion fee of the settings the rule in force, unless it already is:
    the audit checks each reconversion's fee against the rule of its day."""
    settings = node.settings
    fee_rules.record(
        node.engine,
        node.node_key,
        node.ledger.origin,
        settings.reconversion_fee_bps,
        settings.reconversion_cause_share,
        int(clock() * 1000),
    )


def plug_in(node: Node, plugins: Plugins) -> None:
    """Prepare the plugins' part of the database: their migrations, settings, escrows and
    keys. A plugin that fails at any of them is left out; the node opens all the same."""
    node.plugins = plugins
    plugging.migrate(node.engine, plugins)
    plugging.make_settings(plugins)
    for name, codes in plugging.escrows(plugins).items():
        try:
            node.ledger.ensure_accounts(codes)
            _plugin_key(node, f"{PLUGIN}{name}")
        except Exception as exc:
            log.exception("the escrows of plugin %s could not be opened", name)
            plugins.leave_out(plugins.found[name], "escrows", f"{type(exc).__name__}: {exc}")


def _plugin_key(node: Node, owner: str) -> None:
    """The key a plugin signs its escrows' releases and refunds with: made and registered
    the first time, then the log's (several nodes share it as they share every key)."""
    path = key_path(node.settings.keys_dir, owner)
    with node.ledger.reading() as conn:
        registered = _registered(conn).get(owner, {})
    if not registered:
        add_operator(node, owner)
    elif not path.exists():
        raise KeysMismatch(
            f"no key file at {path} for {owner}, whose key the log registers "
            f"({_listed(registered)}). {_copy_keys(node.settings)}"
        )


def _node_key(settings: Settings) -> SigningKey:
    path = key_path(settings.keys_dir, NODE)
    if not path.exists():
        raise KeyFileError(
            f"no key file at {path}: this data directory holds no node. Run `sou init` to "
            "make a new node, or copy the keys directory of the node that serves this "
            f"database to {settings.keys_dir}"
        )
    return load_key(path)


def check_keys(settings: Settings, conn: Connection, node_key: SigningKey) -> None:
    """Refuse a node key, or a role key file, that is not the key the log registers for its
    owner (and has not revoked): the data directory's keys must be those of the node that
    ran `sou init` for this database."""
    registered = _registered(conn)
    if node_key.public_key not in registered.get(NODE, {}).values():
        raise _mismatch(settings, NODE, node_key, registered)
    for owner, keys in sorted(registered.items()):
        path = key_path(settings.keys_dir, owner)
        if owner == NODE or not path.exists():  # a role this node may never sign for
            continue
        held = load_key(path)
        if held.public_key not in keys.values():
            raise _mismatch(settings, owner, held, registered)


def _registered(conn: Connection) -> dict[str, dict[str, bytes]]:
    """The log's unrevoked keys of the node and of the roles: owner -> {key id: public key}."""
    found: dict[str, dict[str, bytes]] = {}
    for row in ledger_repo.active_operator_keys(conn):
        found.setdefault(row["owner"], {})[row["key_id"]] = bytes(row["public_key"])
    return found


def _mismatch(
    settings: Settings, owner: str, key: SigningKey, registered: dict[str, dict[str, bytes]]
) -> KeysMismatch:
    path = key_path(settings.keys_dir, owner)
    return KeysMismatch(
        f"{path} holds the key {key.key_id}, but the log of this database registers "
        f"{_listed(registered.get(owner, {}))} as the {owner} key: these keys are not this "
        f"database's. {_copy_keys(settings)}"
    )


def _listed(keys: dict[str, bytes]) -> str:
    return " or ".join(sorted(keys)) or "no key (every one revoked)"


def _copy_keys(settings: Settings) -> str:
    return (
        "Copy the keys directory of the node that ran `sou init` for this database into "
        f"{settings.keys_dir} (every node serving one database holds the same keys), or point "
        "SOU_DATABASE_URL at this node's own database"
    )


def init_node(settings: Settings, clock: Callable[[], float] = time.time) -> Node:
    """Create keys, schema and the ledger's first entries, dated by `clock` (the demo's
    calendar, for a demo village told in the past). Refuses an initialised node."""
    engine = engine_for(settings)
    if is_initialised(engine):
        engine.dispose()
        raise FileExistsError("this node is already initialised")
    private_dir(settings.keys_dir)
    node_key = _new_key(settings, "node")
    migrate(engine)
    ledger = Ledger.create(
        engine, origin=settings.origin, currency=settings.currency, node_key=node_key, clock=clock
    )
    ledger.max_amount, ledger.max_ttl_s = settings.max_amount, settings.order_max_ttl
    node = Node(settings, engine, ledger, node_key)
    record_fee_rule(node, clock)  # before any reconversion (the demo village's), for the audit
    add_operator(node, "role:treasurer")
    plug_in(node, Plugins.discover(settings.disabled_plugins))
    return node


def _new_key(settings: Settings, owner: str) -> SigningKey:
    path = key_path(settings.keys_dir, owner)
    if path.exists():
        return load_key(path)  # a key kept from an earlier, interrupted init
    key = SigningKey.generate()
    save_key(path, key, owner)
    return key


def add_operator(node: Node, role: str) -> SigningKey:
    """Make an operator's role key, registered by the node key, kept in the key directory."""
    from ledger.canonical import canonical
    from ledger.service import key_event

    key = _new_key(node.settings, role)
    signer = node.signing_key(NODE)
    event = key_event(
        "register",
        origin=node.ledger.origin,
        owner=role,
        public_key=key.public_key,
        signer=signer,
        now=int(node.ledger.clock() * 1000),  # the ledger's time: a told demo's, in the past
    )
    node.ledger.register_key(event, signer.sign_bytes(canonical(event)))
    return key


def role_key(settings: Settings, role: str) -> SigningKey:
    return load_key(key_path(settings.keys_dir, role))
