"""What a run minimizes and records, from its task and loss: the Keras loss, the metrics, the
model's last layer and the targets' form."""

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np


@dataclass(frozen=True)
class Objective:
    task: str
    loss_name: str
    outputs: int
    # The preset models' last activation: None gives logits.
    final_activation: str | None
    # An uploaded model's own output activation ("softmax", "sigmoid", "linear", ...).
    model_activation: str | None = None

    def loss(self) -> Any:
        probabilities = self.model_activation in ("softmax", "sigmoid") or (
            self.final_activation is not None
        )
        if self.loss_name == "sparse_categorical_crossentropy":
            return keras.losses.SparseCategoricalCrossentropy(from_logits=not probabilities)
        if self.loss_name == "binary_crossentropy":
            return keras.losses.BinaryCrossentropy(from_logits=not probabilities)
        if self.loss_name == "mean_absolute_error":
            return keras.losses.MeanAbsoluteError()
        if self.loss_name == "huber":
            return keras.losses.Huber()
        return keras.losses.MeanSquaredError()

    def metrics(self) -> list[Any]:
        if self.task == "regression":
            return [
                keras.metrics.MeanAbsoluteError(name="mae"),
                keras.metrics.RootMeanSquaredError(name="rmse"),
            ]
        if self.loss_name == "sparse_categorical_crossentropy":
            return [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
        if self.loss_name == "binary_crossentropy":
            logits = self.model_activation != "sigmoid"
            return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=0.0 if logits else 0.5)]
        return [keras.metrics.CategoricalAccuracy(name="accuracy")]

    def targets(self, y: np.ndarray, classes: int) -> np.ndarray:
        """The labels in the form the loss compares with the outputs."""
        if self.task == "regression":
            return y.astype("float32").reshape(-1, 1)
        if self.loss_name == "sparse_categorical_crossentropy":
            return y
        if self.loss_name == "binary_crossentropy":
            return y.astype("float32").reshape(-1, 1)
        one_hot: np.ndarray = np.eye(classes, dtype="float32")[y]
        return one_hot  # against softmax outputs


def objective_of(
    task: str, loss: str, classes: int, *, model_activation: str | None = None
) -> Objective:
    if task == "regression":
        return Objective(task, loss, 1, None, model_activation)
    if loss == "binary_crossentropy":
        return Objective(task, loss, 1, None, model_activation)
    if loss == "sparse_categorical_crossentropy":
        return Objective(task, loss, classes, None, model_activation)
    # mean squared (or absolute, huber) error of softmax outputs against one-hot labels
    return Objective(task, loss, classes, "softmax", model_activation)
