import pytest

from worker.backend import configure_backend


@pytest.fixture(scope="session", autouse=True)
def keras_backend() -> str:
    return configure_backend("tensorflow", True)
