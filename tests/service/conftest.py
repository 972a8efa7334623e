import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
import redis as redis_lib
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from core.settings import Settings
from core.stream import MetricsStream, make_redis
from tests.conftest import auth, wait_for
from tests.e2e.conftest import free_port


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
    with TestClient(create_app(test_settings), headers=auth()) as test_client:
        yield test_client


@pytest.fixture
def live_url(
    request: pytest.FixtureRequest,
    test_settings: Settings,
    db_engine: object,
    redis_client: object,
) -> Iterator[str]:
    """The API served by a real uvicorn on a free port, for streaming clients.

    Parametrize it indirectly to set how long an event stream blocks on Redis (ms).
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    block_ms = getattr(request, "param", 200)
    settings = test_settings.model_copy(update={"sse_block_ms": block_ms, "sse_ping_seconds": 1})
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("uvicorn to start", lambda: server.started, every=0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="session")
def keras_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real Keras 3 model file: Input(4), Dense(8, relu), Dense(3)."""
    import keras

    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    path = tmp_path_factory.mktemp("models") / "mlp.keras"
    model.save(path)
    return path.read_bytes()


@pytest.fixture(scope="module")
def private_redis() -> Iterator[redis_lib.Redis]:
    """A redis-server that wants a password; a client of its database 3."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (Debian package redis-server)")
    port = free_port()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--requirepass", "pw"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis_lib.Redis(port=port, password="pw", db=3)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis_lib.ConnectionError:
            return False

    try:
        wait_for("redis to listen", answers, timeout=60)
        yield client
    finally:
        client.close()
        process.kill()
        process.wait(timeout=10)
