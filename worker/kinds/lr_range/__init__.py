"""One range-test run: an optimizer's mini-batch losses as its learning rate rises."""

from worker.kinds.lr_range.run import run

__all__ = ["run"]
