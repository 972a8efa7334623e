"""Several arms of one seed trained in one compiled step.

Arms that share the seed, the data, the model and the batch size differ only in their
optimizer. Each arm keeps its own model (built from the seed, so every arm starts from the
same weights with the same dropout generators) and its own optimizer, and one fit runs the K
forward and backward passes in each step. On TensorFlow's backend `SharedStep` traces one
arm's pass once and calls it with each arm's weights; on the others a group puts the K models
side by side behind one input, and `keras.optimizers.MultiOptimizer` hands each model's
gradients to that arm's optimizer (the gradient of the summed loss with respect to one arm's
weights is that arm's own). Either way each arm computes what it would alone
(tests/unit/worker/training/test_fused.py checks it). A group of one is the arm's model
compiled as it is."""

import math
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from worker.training.objective import Objective


def epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of examples in an epoch: a function of seed and epoch only, never of the arm."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class EpochBatches(keras.utils.PyDataset):
    """The training examples in mini-batches, epoch after epoch from `first_epoch` (1-based),
    each in its epoch's order; the targets repeated for each arm of a group.

    One stream for the whole fit, each batch a function of its position alone: fit's input
    pipeline reads ahead (into the next epoch, before any callback hears of it), so nothing
    here may depend on when a batch is read."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        *,
        seed: int,
        batch_size: int,
        arms: int,
        first_epoch: int,
    ) -> None:
        super().__init__()
        self.x, self.y, self.seed, self.batch_size, self.arms = x, y, seed, batch_size, arms
        self.first_epoch = first_epoch
        self.steps = math.ceil(len(x) / batch_size)
        self._order: tuple[int, np.ndarray] | None = None

    @property
    def num_batches(self) -> None:
        return None  # endless: fit is told the steps of an epoch

    def order(self, epoch: int) -> np.ndarray:
        """The example order of 1-based `epoch` (the last one asked is kept)."""
        if self._order is None or self._order[0] != epoch:
            self._order = (epoch, epoch_order(self.seed, epoch - 1, len(self.x)))
        return self._order[1]

    def __getitem__(self, index: int) -> tuple[np.ndarray, Any]:
        epoch, step = divmod(index, self.steps)
        order = self.order(self.first_epoch + epoch)
        chosen = order[step * self.batch_size : (step + 1) * self.batch_size]
        y = self.y[chosen]
        return self.x[chosen], y if self.arms == 1 else tuple([y] * self.arms)


class EpochTensors:
    """The batches of `EpochBatches` as a tf.data pipeline (TensorFlow's backend), so fit
    gathers each batch in its graph instead of calling Python per step.

    One epoch at a time: `dataset` yields that epoch's batches (a known count, so fit starts
    it anew each epoch, after `on_epoch_begin`, and never reads into the next), in the order
    `begin(epoch)` set, which a callback calls at `on_epoch_begin`. Several steps may then run
    in one call of the compiled step (`steps_per_execution`), none crossing an epoch's end."""

    def __init__(
        self, x: np.ndarray, y: np.ndarray, *, seed: int, batch_size: int, arms: int
    ) -> None:
        import tensorflow as tf

        self.seed, self.n = seed, len(x)
        examples, targets = tf.constant(x), tf.constant(y)
        self._order = tf.Variable(tf.zeros([self.n], tf.int64), trainable=False)
        order = self._order

        def take(positions: Any) -> tuple[Any, Any]:
            chosen = tf.gather(order, positions)
            batch, wanted = tf.gather(examples, chosen), tf.gather(targets, chosen)
            return batch, wanted if arms == 1 else tuple([wanted] * arms)

        self.dataset = (
            tf.data.Dataset.range(self.n).batch(batch_size).map(take).prefetch(tf.data.AUTOTUNE)
        )

    def begin(self, epoch: int) -> None:
        """Order the examples for 1-based `epoch`, before its batches are read."""
        self._order.assign(epoch_order(self.seed, epoch - 1, self.n))


def batched(x: np.ndarray, y: Any, batch_size: int) -> Any:
    """(x, y) in batches, in order, as a tf.data pipeline (TensorFlow's backend)."""
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).prefetch(tf.data.AUTOTUNE)


class ExampleMeanLoss(keras.metrics.Mean):
    """An output's loss averaged over examples, as fit's own loss tracker averages it (Keras's
    per-output loss counts a short last batch as a whole one)."""

    def __init__(self, loss: Any, name: str = "example_loss") -> None:
        super().__init__(name=name)
        self._loss = loss

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        super().update_state(self._loss(y_true, y_pred), sample_weight=keras.ops.shape(y_pred)[0])


def has_regularization(model: keras.Model) -> bool:
    """Whether the model adds losses of its own (a fused arm's loss would leave them out)."""
    for layer in model._flatten_layers(include_self=False):
        if any(
            getattr(layer, name, None) is not None
            for name in dir(layer)
            if name.endswith("_regularizer") and not name.startswith("__")
        ):
            return True
    return False


class SharedStep(keras.Model):
    """K arms trained side by side on TensorFlow's backend, one arm's pass traced once.

    Every arm's model has the same structure, so one function computes any arm's step from
    that arm's weights and state (`stateless_call` of the first model, given another arm's
    values): the forward pass, the loss, the gradients and the metrics' new state. It is
    traced once and called K times in the compiled step, where putting the K models side
    by side traced K copies of it (most of a fused job's first epoch). Each arm's own
    optimizer applies that arm's gradients to its own weights, and its dropout generators and
    metrics move on from their own state, so each arm computes exactly what it computes alone.
    Evaluation is not compiled as one step: each batch goes through one arm's evaluation,
    traced once, arm after arm from Python.
    """

    def __init__(
        self,
        models: Sequence[keras.Model],
        optimizers: Sequence[keras.optimizers.Optimizer],
        objective: Objective,
    ) -> None:
        import tensorflow as tf

        super().__init__(name=f"fused_{len(models)}")
        self.arms = list(models)
        self._optimizers = tuple(optimizers)
        self._template = models[0]
        self._loss = objective.loss()
        # each arm's running loss (over examples, as fit's own) and metrics; the template's
        # metrics only compute new states from values given to them, they keep none
        self.arm_losses = [
            keras.metrics.Mean(name=f"arm_{k}_example_loss") for k in range(len(models))
        ]
        self.arm_metrics = [objective.metrics() for _ in models]
        self._template_loss = keras.metrics.Mean(name="example_loss")
        self._template_metrics = objective.metrics()
        # Not inlined into the step: the runtime optimizes and instantiates one arm's pass
        # once, where K inlined copies were each optimized (a quarter of the first epoch)
        once = {"reduce_retracing": True, "autograph": False}
        attributes = {"_noinline": True}
        self.train_arm = tf.function(self._train_arm, **once, experimental_attributes=attributes)
        self.test_arm = tf.function(self._test_arm, **once, experimental_attributes=attributes)
        self.built = True

    def call(self, x: Any, training: bool = False) -> list[Any]:
        return [model(x, training=training) for model in self.arms]

    @property
    def metrics(self) -> list[Any]:
        return [m for k, loss in enumerate(self.arm_losses) for m in (loss, *self.arm_metrics[k])]

    def _measure(self, y: Any, predicted: Any, loss: Any, states: Any) -> list[Any]:
        """The metrics' new states after this batch, from their states before it."""
        import tensorflow as tf

        batch = tf.shape(predicted)[0]
        new = [self._template_loss.stateless_update_state(states[0], loss, sample_weight=batch)]
        for metric, state in zip(self._template_metrics, states[1:], strict=True):
            new.append(metric.stateless_update_state(state, y, predicted))
        return new

    def _train_arm(self, trainable: Any, other: Any, states: Any, x: Any, y: Any) -> Any:
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(trainable)
            predicted, other = self._template.stateless_call(trainable, other, x, training=True)
            loss = self._loss(y, predicted)
        gradients = tape.gradient(loss, trainable)
        return gradients, other, self._measure(y, predicted, loss, states)

    def _test_arm(self, trainable: Any, other: Any, variables: Any, x: Any, y: Any) -> Any:
        """One arm's evaluation of a batch: its metrics' variables (`variables`, one list a
        metric) moved on, and their results."""
        predicted, _ = self._template.stateless_call(trainable, other, x, training=False)
        states = [[v.read_value() for v in own] for own in variables]
        new = self._measure(y, predicted, self._loss(y, predicted), states)
        results = []
        templates = (self._template_loss, *self._template_metrics)
        for template, own, state in zip(templates, variables, new, strict=True):
            for variable, value in zip(own, state, strict=True):
                variable.assign(value)
            results.append(template.stateless_result(state))
        return results

    def _states(self, k: int) -> list[list[Any]]:
        return [[v.value for v in m.variables] for m in (self.arm_losses[k], *self.arm_metrics[k])]

    def _update(self, k: int, states: Any) -> dict[str, Any]:
        for metric, state in zip((self.arm_losses[k], *self.arm_metrics[k]), states, strict=True):
            for variable, value in zip(metric.variables, state, strict=True):
                variable.assign(value)
        return self._logs(k, [metric.result() for metric in self._arm_measures(k)])

    def _arm_measures(self, k: int) -> tuple[Any, ...]:
        return (self.arm_losses[k], *self.arm_metrics[k])

    def _logs(self, k: int, results: Sequence[Any]) -> dict[str, Any]:
        """Arm k's results named as fit's and evaluate's logs name them."""
        return {
            metric.name if metric is self.arm_losses[k] else f"arm_{k}_{metric.name}": result
            for metric, result in zip(self._arm_measures(k), results, strict=True)
        }

    def train_step(self, data: Any) -> dict[str, Any]:
        x, targets = data[0], data[1]
        logs: dict[str, Any] = {}
        for k, (model, optimizer) in enumerate(zip(self.arms, self._optimizers, strict=True)):
            gradients, other, states = self.train_arm(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                self._states(k),
                x,
                targets[k],
            )
            for variable, value in zip(model.non_trainable_variables, other, strict=True):
                variable.assign(value)
            optimizer.apply(gradients, model.trainable_variables)
            logs |= self._update(k, states)
        return logs

    def make_test_function(self, force: bool = False) -> Any:
        """Evaluation from Python, arm after arm, each batch through `test_arm` (one arm's
        pass, traced once for every arm): the K arms' test step traced as one graph cost more
        than all of a job's evaluation, a few batches an epoch, runs."""
        made = getattr(self, "test_function", None)  # (Keras sets it; untyped)
        if made is not None and not force:
            return made
        steps = self.steps_per_execution

        def function(iterator: Any) -> dict[str, Any]:
            logs = None
            if hasattr(iterator, "get_next_as_optional"):
                for _ in range(steps):
                    batch = iterator.get_next_as_optional()
                    if not batch.has_value():
                        break
                    logs = self.test_step(batch.get_value())
            else:
                for _, data in zip(range(steps), iterator, strict=False):
                    logs = self.test_step(data)
            if logs is None:
                raise StopIteration
            return logs

        self.test_function = function
        return function

    def test_step(self, data: Any) -> dict[str, Any]:
        x, targets = data[0], data[1]
        logs: dict[str, Any] = {}
        for k, model in enumerate(self.arms):
            results = self.test_arm(
                [v.value for v in model.trainable_variables],
                [v.value for v in model.non_trainable_variables],
                self._states(k),
                x,
                targets[k],
            )
            logs |= self._logs(k, results)
        return logs


class Group:
    """K arms' models compiled as one: `model` trains them, `arm_logs` reads one arm's numbers
    out of fit's and evaluate's logs."""

    def __init__(
        self,
        models: Sequence[keras.Model],
        optimizers: Sequence[keras.optimizers.Optimizer],
        objective: Objective,
        *,
        steps_per_execution: int = 1,
    ) -> None:
        self.models, self.optimizers, self.objective = list(models), list(optimizers), objective
        if len(models) == 1:
            self.model = models[0]
            self.model.compile(
                optimizer=optimizers[0],
                loss=objective.loss(),
                metrics=objective.metrics(),
                steps_per_execution=steps_per_execution,
            )
            self.optimizer = optimizers[0]
            return
        for k, model in enumerate(models):
            model.name = f"arm_{k}"  # its outputs' names in the logs (and names must differ)
        owner = {
            id(variable): optimizer
            for model, optimizer in zip(models, optimizers, strict=True)
            for variable in model.trainable_variables
        }
        # builds every arm's optimizer at once (and holds them for fit); SharedStep's step
        # applies each arm's own
        self.optimizer = keras.optimizers.MultiOptimizer(lambda variable: owner[id(variable)])
        if keras.backend.backend() == "tensorflow":
            self.model = SharedStep(models, optimizers, objective)
            self.model.compile(optimizer=self.optimizer, steps_per_execution=steps_per_execution)
            return
        inputs = keras.Input(shape=tuple(models[0].input_shape[1:]))
        outputs = [model(inputs) for model in models]
        self.model = keras.Model(inputs, outputs, name=f"fused_{len(models)}")
        losses = [objective.loss() for _ in models]
        self.model.compile(
            optimizer=self.optimizer,
            loss=losses,
            metrics=[[ExampleMeanLoss(loss), *objective.metrics()] for loss in losses],
            steps_per_execution=steps_per_execution,
        )

    def __len__(self) -> int:
        return len(self.models)

    def build(self, x: np.ndarray, y: np.ndarray) -> None:
        """Create every variable the step needs, from a batch's shapes alone: the compiled
        metrics' and losses' (which TensorFlow's backend would otherwise create inside the
        first trace of evaluate's step, so tf.function traces that step twice) and every
        arm's optimizer's (before a checkpoint is put into them). No number moves: no
        example is seen, no random generator is drawn."""
        build = getattr(self.model, "_symbolic_build", None)
        if build is not None:  # Keras 3's trainer; without it, the first trace builds them
            build(data_batch=(x[:1], self.targets(y[:1])))
        if not self.optimizer.built:
            self.optimizer.build(self.model.trainable_variables)

    def targets(self, y: np.ndarray) -> Any:
        return y if len(self) == 1 else tuple([y] * len(self))

    def arm_logs(self, logs: dict[str, Any], k: int, prefix: str = "") -> dict[str, Any]:
        """Arm k's entries of fit's or evaluate's logs, named as a lone model names them
        (`prefix` "val_" for fit's validation)."""
        if len(self) == 1:
            return {
                name[len(prefix) :]: value
                for name, value in logs.items()
                if name.startswith(prefix) and not (not prefix and name.startswith("val_"))
            }
        own = f"{prefix}arm_{k}_"
        found = {name[len(own) :]: value for name, value in logs.items() if name.startswith(own)}
        found["loss"] = found.pop("example_loss", None)
        return found
