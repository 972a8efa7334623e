from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from core.models import Base
from tests.conftest import create_database, drop_database, migrate


def test_upgrade_from_empty_matches_the_models_and_downgrade_empties_it() -> None:
    name = "optarena_test_migrations"
    url = create_database(name)
    engine = create_engine(url)
    try:
        migrate(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        migrate(url, "base", down=True)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrate(url)  # and up again: the downgrade left nothing behind (enum types included)
        assert {"jobs", "runs", "epoch_metrics"} <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
        drop_database(name)
