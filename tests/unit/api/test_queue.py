import subprocess
import sys

from tests.conftest import ROOT


def test_the_broker_loads_its_transport_when_made_and_connects_to_nothing() -> None:
    """The transport's module is loaded before the first send (not inside a request), and
    making the broker needs no broker: none listens on the port it is given."""
    script = (
        "import sys\n"
        "from api.queue import Broker\n"
        "from core.settings import Settings\n"
        "assert 'kombu.transport.redis' not in sys.modules\n"
        "broker = Broker(Settings(broker_url='redis://127.0.0.1:9/0'))\n"
        "assert 'kombu.transport.redis' in sys.modules\n"
        "broker.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
