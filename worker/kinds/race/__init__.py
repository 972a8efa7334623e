"""One race run: an optimizer's path on the test function."""

from worker.kinds.race.run import run

__all__ = ["run"]
