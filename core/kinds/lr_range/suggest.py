"""What a range test suggests, read off its smoothed loss against the learning rate. Pure
functions over (learning rate, smoothed loss) points in step order.

- steepest: the learning rate where the smoothed loss falls fastest per decade (the left end
  of the steepest segment), up to the minimum; like the rest, read without the first tenth of
  the steps and the last five (fastai's trim) once there are twenty or more;
- minimum / 10: a tenth of the learning rate at the smoothed loss's minimum (fastai's rule);
- usable interval: from the first learning rate where the smoothed loss has made a tenth of
  its fall (start to minimum) to the minimum's learning rate: the learning rates that train,
  and the search interval a tuning job takes from the test;
- blew up at: the learning rate of the step where the test stopped (the smoothed loss above
  stop_factor times its best, or not finite); null when it ran every step.
"""

import itertools
import math
from collections.abc import Sequence

from pydantic import BaseModel, Field

FALL_FRACTION = 0.1  # where the usable interval starts: this much of the fall made
# As fastai reads its curve: the first tenth of the steps (the moving average is still
# settling, and a step of a twentieth of a decade turns noise into steep slopes) and the last
# five (the blow-up) are left out, once there are enough steps to spare them.
SKIP_START_FRACTION = 0.1
SKIP_END = 5


class Suggestion(BaseModel):
    steepest: float | None = Field(description="Where the smoothed loss falls fastest.")
    minimum: float | None = Field(description="The learning rate at the smoothed loss's minimum.")
    minimum_div_10: float | None = Field(description="minimum / 10: fastai's suggestion.")
    usable: list[float] | None = Field(
        description="[low, high]: from a tenth of the fall made to the minimum; null when the "
        "loss never fell."
    )
    blew_up_at: float | None = Field(description="Where the test stopped early; null: it did not.")
    start_loss: float | None
    min_loss: float | None


def suggest(points: Sequence[tuple[float, float | None]], *, stopped: bool) -> Suggestion:
    """The suggestions from (learning rate, smoothed loss) in step order; `stopped`: the last
    point is where the test stopped early."""
    blew_up = points[-1][0] if stopped and points else None
    curve = [(lr, loss) for lr, loss in points if loss is not None and math.isfinite(loss)]
    if stopped and curve and curve[-1][0] == blew_up:
        curve = curve[:-1]  # the blow-up step is not a candidate
    if len(curve) >= 4 * SKIP_END:
        curve = curve[int(len(curve) * SKIP_START_FRACTION) : len(curve) - SKIP_END]
    if not curve:
        return Suggestion(
            steepest=None,
            minimum=None,
            minimum_div_10=None,
            usable=None,
            blew_up_at=blew_up,
            start_loss=None,
            min_loss=None,
        )
    lowest = min(range(len(curve)), key=lambda i: curve[i][1])
    lr_min, loss_min = curve[lowest]
    start = curve[0][1]
    descent = curve[: lowest + 1]
    slopes = [
        ((b_loss - a_loss) / (math.log10(b_lr) - math.log10(a_lr)), a_lr)
        for (a_lr, a_loss), (b_lr, b_loss) in itertools.pairwise(descent)
        if b_lr > a_lr
    ]
    steepest = min(slopes)[1] if slopes and min(slopes)[0] < 0 else None
    fell = start - loss_min
    usable = None
    if fell > 0:
        low = next(lr for lr, loss in descent if start - loss >= FALL_FRACTION * fell)
        usable = [low, lr_min] if low < lr_min else None
    return Suggestion(
        steepest=steepest,
        minimum=lr_min,
        minimum_div_10=lr_min / 10,
        usable=usable,
        blew_up_at=blew_up,
        start_loss=start,
        min_loss=loss_min,
    )
