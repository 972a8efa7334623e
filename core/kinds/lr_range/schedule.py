"""Leslie Smith's learning-rate range test as fastai runs it: the learning rate rises
exponentially from `min` to `max` over `steps` mini-batch steps; the loss is smoothed by a
bias-corrected exponential moving average; the test ends when the smoothed loss exceeds
`stop_factor` times its best, or is not finite. Pure functions, no Keras."""

import math


def learning_rates(low: float, high: float, steps: int) -> list[float]:
    """The learning rate of each step: low at the first, high at the last, geometric between."""
    if steps == 1:
        return [low]
    ratio = high / low
    return [low * ratio ** (i / (steps - 1)) for i in range(steps)]


class Smoother:
    """avg = beta * avg + (1 - beta) * loss; smoothed = avg / (1 - beta ** n), and the stop rule."""

    def __init__(self, beta: float, stop_factor: float | None) -> None:
        self.beta = beta
        self.stop_factor = stop_factor
        self.average = 0.0
        self.count = 0
        self.best = math.inf

    def add(self, loss: float) -> tuple[float | None, bool]:
        """The smoothed loss after this step, and whether the test stops here."""
        if not math.isfinite(loss):
            return None, True
        self.count += 1
        self.average = self.beta * self.average + (1 - self.beta) * loss
        smoothed = self.average / (1 - self.beta**self.count)
        stop = (
            self.stop_factor is not None
            and self.count > 1
            and smoothed > self.stop_factor * self.best
        )
        self.best = min(self.best, smoothed)
        return smoothed, stop
