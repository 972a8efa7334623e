"""Each kind's run function, in worker/kinds/<kind>/ beside its contract in core/kinds/<kind>/.
Imported in the worker's child process, after the backend is configured.

A kind may also train several runs together: `group_key(spec, run) -> str | None` (runs with
one key may; None: this one trains alone) and `run_group(contexts) -> outcomes`."""

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType

from worker.runs import GroupKey, GroupRunFunction, RunFunction

__path__ = pkgutil.extend_path(__path__, __name__)  # kinds shipped elsewhere on the path


def _module(kind: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{kind}")


def run_function(kind: str) -> RunFunction:
    """The function that runs one run of this kind."""
    function: RunFunction = _module(kind).run
    return function


@dataclass(frozen=True)
class Grouping:
    key: GroupKey
    run: GroupRunFunction


def grouping(kind: str) -> Grouping | None:
    """How runs of this kind train together, if they can."""
    module = _module(kind)
    if not (hasattr(module, "group_key") and hasattr(module, "run_group")):
        return None
    return Grouping(key=module.group_key, run=module.run_group)
