import pytest
from pydantic import ValidationError

from core.settings import Settings, default_credentials

GOOD = {
    "database_url": "postgresql+psycopg://optarena:Zq4-long-secret@db:5432/optarena",
    "redis_url": "redis://:R7-long-secret@redis:6379/0",
}


def test_production_refuses_default_credentials_and_says_which_setting() -> None:
    Settings(environment="production", **GOOD)
    for name, url in [
        ("database_url", "postgresql+psycopg://postgres@db:5432/optarena"),
        ("database_url", "postgresql+psycopg://postgres:postgres@db:5432/optarena"),
        ("redis_url", "redis://redis:6379/0"),
        ("broker_url", "amqp://guest:guest@rabbit:5672//"),
    ]:
        with pytest.raises(ValidationError) as refused:
            Settings(environment="production", **{**GOOD, name: url})
        assert f"OPTARENA_{name.upper()}" in str(refused.value)


def test_development_accepts_the_local_defaults() -> None:
    assert Settings(environment="development").database_url.startswith("postgresql")


def test_what_counts_as_a_default() -> None:
    assert default_credentials("postgresql://u@h/d") == "has no password"
    assert default_credentials("postgresql://u:Password@h/d") is not None
    assert default_credentials("postgresql://u:s3cr3t-4-real@h/d") is None
    assert default_credentials(None) is None


def test_a_password_of_any_characters_is_put_into_the_urls_encoded() -> None:
    from kombu.utils.url import url_to_parts
    from redis.connection import parse_url
    from sqlalchemy.engine import make_url

    secret = "p@ss/w:rd%?#"
    settings = Settings(
        environment="production",
        database_url="postgresql+psycopg://optarena@db:5432/optarena",
        redis_url="redis://redis:6379/0",
        database_password=secret,
        redis_password=secret,
    )
    database = make_url(settings.database_url)
    assert (database.username, database.password, database.host) == ("optarena", secret, "db")
    assert parse_url(settings.redis_url)["password"] == secret
    assert url_to_parts(settings.celery_broker_url).password == secret
    replaced = Settings(database_url="postgresql://u:old@h/d", database_password="new")
    assert make_url(replaced.database_url).password == "new"
    with pytest.raises(ValidationError, match="OPTARENA_DATABASE_URL"):
        Settings(environment="production", **{**GOOD, "database_password": "postgres"})
