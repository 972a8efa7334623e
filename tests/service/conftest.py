from collections.abc import Iterator

import pytest
import redis as redis_lib
from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings
from core.stream import MetricsStream, make_redis


@pytest.fixture
def redis_client(test_settings: Settings) -> Iterator[redis_lib.Redis]:
    client = make_redis(test_settings.redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def stream(redis_client: redis_lib.Redis, test_settings: Settings) -> MetricsStream:
    return MetricsStream(redis_client, maxlen=1000, ttl_seconds=test_settings.stream_ttl_seconds)


@pytest.fixture
def client(
    test_settings: Settings, db_engine: object, redis_client: object
) -> Iterator[TestClient]:
    with TestClient(create_app(test_settings)) as test_client:
        yield test_client
