"""Models built by plain functions from a validated spec; logits out."""

import hashlib
import tempfile
from typing import Any

import keras

from core.architectures import (
    BatchNormLayer,
    CnnSpec,
    Conv2DLayer,
    DenseLayer,
    DropoutLayer,
    FlattenLayer,
    LayersSpec,
    MaxPool2DLayer,
    MlpSpec,
)
from core.artifacts import ArtifactStore
from core.uploads import Stored
from worker.runs import RunFailed


def build_model(
    spec: MlpSpec | CnnSpec | LayersSpec,
    *,
    input_shape: tuple[int, ...],
    num_classes: int,
    activation: str | None = None,
) -> keras.Model:
    """A Sequential model ending in Dense(num_classes): logits, or `activation` of them (one
    output for a regression). Seed Keras before calling."""
    layers: list[Any] = [keras.Input(shape=input_shape)]
    if isinstance(spec, MlpSpec):
        layers.append(keras.layers.Flatten())
        for units in spec.hidden_units:
            layers.append(keras.layers.Dense(units, activation=spec.activation))
            if spec.dropout:
                layers.append(keras.layers.Dropout(spec.dropout))
    elif isinstance(spec, CnnSpec):
        for filters in spec.filters:
            layers.append(
                keras.layers.Conv2D(
                    filters, spec.kernel_size, padding="same", activation=spec.activation
                )
            )
            layers.append(keras.layers.MaxPooling2D(2))
        layers.append(keras.layers.Flatten())
        if spec.dropout:
            layers.append(keras.layers.Dropout(spec.dropout))
        if spec.dense_units:
            layers.append(keras.layers.Dense(spec.dense_units, activation=spec.activation))
    else:
        layers.extend(_layer(layer) for layer in spec.layers)
    model = keras.Sequential(layers)
    if len(model.output_shape) > 2:
        model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(num_classes, activation=activation, name="logits"))
    return model


def _layer(
    layer: DenseLayer | Conv2DLayer | MaxPool2DLayer | FlattenLayer | DropoutLayer | BatchNormLayer,
) -> Any:
    if isinstance(layer, DenseLayer):
        return keras.layers.Dense(layer.units, activation=layer.activation)
    if isinstance(layer, Conv2DLayer):
        return keras.layers.Conv2D(
            layer.filters, layer.kernel_size, padding=layer.padding, activation=layer.activation
        )
    if isinstance(layer, MaxPool2DLayer):
        return keras.layers.MaxPooling2D(layer.pool_size)
    if isinstance(layer, FlattenLayer):
        return keras.layers.Flatten()
    if isinstance(layer, DropoutLayer):
        return keras.layers.Dropout(layer.rate)
    return keras.layers.BatchNormalization()


def load_uploaded_model(store: ArtifactStore, upload: Stored, *, weights: str) -> keras.Model:
    """An uploaded `.keras` model, loaded in Keras's safe mode without its compile state (no
    code from the file runs). "reinitialize": a clone with fresh weights drawn by each layer's
    own initializers; seed Keras before calling, so the run's seed fixes them."""
    with tempfile.TemporaryDirectory() as scratch:
        local = f"{scratch}/model.keras"
        store.get_file(upload.key, local)
        try:
            model = keras.saving.load_model(local, safe_mode=True, compile=False)
        except Exception as error:
            raise RunFailed(f"the uploaded model could not be loaded: {error}") from error
    if weights == "reinitialize":
        model = keras.models.clone_model(model)
    return model


def weights_sha256(model: keras.Model) -> str:
    """A fingerprint of every weight's shape, dtype and bytes: equal iff the weights are."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(f"{weight.shape}{weight.dtype}".encode())
        digest.update(weight.tobytes())
    return digest.hexdigest()
