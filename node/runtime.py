"""Opening the node: settings -> engine -> migrated schema -> ledger, keys, poster, sealer."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

from ledger.chart import SYSTEM_ACCOUNTS
from ledger.poster import Poster
from ledger.sealer import Sealer
from ledger.service import Ledger
from ledger.signing import SigningKey
from node import witness
from node.database import make_engine
from node.keystore import key_path, load_key, private_dir, save_key
from node.sealer import SealerThread
from node.settings import Settings


def migrate(engine: Engine) -> None:
    """Bring the schema to the latest revision: the only way tables are ever made."""
    config = Config()
    config.set_main_option("script_location", str(files("migrations")))
    with engine.begin() as conn:  # env.py uses this connection (no URL in the config)
        config.attributes["connection"] = conn
        command.upgrade(config, "heads")


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
    extras: dict[str, object] = field(default_factory=dict)

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
        return self

    def close(self) -> None:
        if self.poster is not None:
            self.poster.stop()
        if self.sealer is not None:
            self.sealer.stop()
        self.engine.dispose()


def engine_for(settings: Settings) -> Engine:
    if not settings.database_url:
        private_dir(settings.data_dir)
    return make_engine(settings.resolved_database_url, pool_size=settings.pool_size)


def open_node(settings: Settings) -> Node:
    engine = engine_for(settings)
    if not is_initialised(engine):
        engine.dispose()
        raise RuntimeError("this node is not initialised yet: run `sou init`")
    migrate(engine)
    ledger = Ledger(engine, max_amount=settings.max_amount, max_ttl_s=settings.order_max_ttl)
    ledger.ensure_accounts(SYSTEM_ACCOUNTS)  # accounts that later versions added to the chart
    return Node(settings, engine, ledger, load_key(key_path(settings.keys_dir, "node")))


def init_node(settings: Settings) -> Node:
    """Create keys, schema and the ledger's first entries. Refuses an initialised node."""
    engine = engine_for(settings)
    if is_initialised(engine):
        engine.dispose()
        raise FileExistsError("this node is already initialised")
    private_dir(settings.keys_dir)
    node_key = _new_key(settings, "node")
    migrate(engine)
    ledger = Ledger.create(
        engine, origin=settings.origin, currency=settings.currency, node_key=node_key
    )
    ledger.max_amount, ledger.max_ttl_s = settings.max_amount, settings.order_max_ttl
    node = Node(settings, engine, ledger, node_key)
    add_operator(node, "role:treasurer")
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
    event = key_event(
        "register",
        origin=node.ledger.origin,
        owner=role,
        public_key=key.public_key,
        signer=node.node_key,
    )
    node.ledger.register_key(event, node.node_key.sign_bytes(canonical(event)))
    return key


def role_key(settings: Settings, role: str) -> SigningKey:
    return load_key(key_path(settings.keys_dir, role))
