"""Each kind's run function, in worker/kinds/<kind>/ beside its contract in core/kinds/<kind>/.
Imported in the worker's child process, after the backend is configured."""

import importlib
import pkgutil

from worker.runs import RunFunction

__path__ = pkgutil.extend_path(__path__, __name__)  # kinds shipped elsewhere on the path


def run_function(kind: str) -> RunFunction:
    """The function that runs one run of this kind."""
    function: RunFunction = importlib.import_module(f"{__name__}.{kind}").run
    return function
