"""Shared fixtures. Tests never load third-party plugins: ``Plugins(entrypoints=False)``."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from ibb.core.engine import Engine
from ibb.core.gateway import create_app
from ibb.core.plugins import Plugins
from ibb.core.profile import Profile, load_profile
from ibb.core.store import Store
from ibb.core.testing import ThreadedServer
from ibb.profiles import SHIPPED_DIR

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
POSTGRES_URL = os.environ.get("IBB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# The shipped profiles authenticate each sending entity with a token from the environment.
TEST_TOKENS = {
    "IBB_KR_KCS_TOKEN": "test-token-kr-kcs",
    "IBB_CN_GACC_TOKEN": "test-token-cn-gacc",
    "IBB_KR_KCCI_TOKEN": "test-token-kr-kcci",
    "IBB_CIR_TOKEN": "test-token-cir",
    "IBB_BR_RFB_TOKEN": "test-token-br-rfb",
}
for _name, _value in TEST_TOKENS.items():
    os.environ.setdefault(_name, _value)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def plugins() -> Plugins:
    return Plugins(entrypoints=False)


@pytest.fixture
def shared_fixtures() -> Path:
    path = SHARED / "fixtures"
    if not path.is_dir():
        pytest.skip(f"shared fixtures not found at {path} (they sit beside the repository in CI)")
    return path


@pytest.fixture
def shipped_profile(plugins: Plugins) -> Profile:
    return load_profile(Path(SHIPPED_DIR) / "kr-cn-eodes.toml", plugins)


def _postgres_admin() -> sa.Engine | None:
    try:
        engine = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect():
            pass
        return engine
    except Exception:
        return None


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[sa.Engine | None]:
    engine = _postgres_admin()
    yield engine
    if engine is not None:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path, postgres_admin: sa.Engine | None) -> Iterator[Callable[[str], Store]]:
    """Makes fresh, empty stores named by the test: SQLite files, or new PostgreSQL databases."""
    created: list[Store] = []
    databases: list[str] = []

    def make(name: str) -> Store:
        if request.param == "sqlite":
            store = Store(tmp_path / f"{name}.sqlite")
        else:
            if postgres_admin is None:
                pytest.skip(f"no PostgreSQL reachable at {POSTGRES_URL}")
            db = f"ibb_test_{uuid.uuid4().hex[:12]}"
            with postgres_admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{db}"'))
            databases.append(db)
            store = Store(postgres_admin.url.set(database=db).render_as_string(hide_password=False))
        created.append(store)
        return store

    yield make
    for store in created:
        store.close()
    if postgres_admin is not None:
        with postgres_admin.connect() as conn:
            for db in databases:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)'))


class RunningGateway(ThreadedServer):
    """A real gateway (uvicorn) serving an engine on a free 127.0.0.1 port, in a thread."""

    engine: Engine

    def endpoint(self, profile_id: str) -> str:
        return f"{self.url}/rest/{profile_id}/messages"

    def start(self, engine: Engine, **app_options) -> RunningGateway:  # type: ignore[override]
        self.engine = engine
        super().start(create_app(engine, **app_options))
        return self


def wait_for(predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition") -> object:
    """Poll until ``predicate()`` is truthy (delivery is asynchronous); fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def waiter() -> Callable[..., object]:
    return wait_for


@pytest.fixture
def gateway_class() -> type[RunningGateway]:
    return RunningGateway


@pytest.fixture
def gateway_pair(
    shipped_profile: Profile, plugins: Plugins, store_factory: Callable[[str], Store]
) -> Iterator[tuple[RunningGateway, RunningGateway, Profile]]:
    """Exporting (KR-KCS) and importing (CN-GACC) gateways of the shipped profile, wired to each other."""
    exporter, importer = RunningGateway(), RunningGateway()
    profile = shipped_profile.with_endpoint("KR-KCS", exporter.endpoint(shipped_profile.id)).with_endpoint(
        "CN-GACC", importer.endpoint(shipped_profile.id)
    )
    try:
        exporter.start(Engine({profile.id: profile}, store_factory("kr"), plugins, local={"KR-KCS"}))
        importer.start(Engine({profile.id: profile}, store_factory("cn"), plugins, local={"CN-GACC"}))
        yield exporter, importer, profile
    finally:
        exporter.stop()
        importer.stop()
