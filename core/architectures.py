"""Model architectures a job can train: presets and layer lists, built by the worker with
Keras and checked here, without it, against the dataset's input."""

import uuid
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Discriminator, Field, StrictFloat, Tag

from core.contract import ContractModel, Integer, integer

Activation = Literal["relu", "tanh", "sigmoid", "gelu", "elu", "selu", "swish", "linear"]
if TYPE_CHECKING:
    Units = int
else:
    Units = integer(ge=1, le=65536)
Rate = Annotated[StrictFloat, Field(ge=0.0, lt=1.0)]


class MlpSpec(ContractModel):
    """Flatten, Dense layers with dropout after each, then Dense(classes) logits."""

    preset: Literal["mlp"]
    hidden_units: list[Units] = Field(default=[128], max_length=16)
    activation: Activation = "relu"
    dropout: Rate = 0.0


class CnnSpec(ContractModel):
    """Conv2D + MaxPooling2D blocks, then an optional Dense layer, then logits. Needs image
    data with sides of at least 2 ** len(filters) pixels."""

    preset: Literal["cnn"]
    filters: list[integer(ge=1, le=4096)] = Field(  # type: ignore[valid-type]
        default=[32, 64], min_length=1, max_length=8
    )
    kernel_size: Integer = Field(default=3, ge=1, le=11)
    dense_units: Integer = Field(default=128, ge=0, le=65536)
    activation: Activation = "relu"
    dropout: Rate = 0.0


class DenseLayer(ContractModel):
    type: Literal["dense"]
    units: Units
    activation: Activation = "relu"


class Conv2DLayer(ContractModel):
    type: Literal["conv2d"]
    filters: Integer = Field(ge=1, le=4096)
    kernel_size: Integer = Field(default=3, ge=1, le=11)
    activation: Activation = "relu"
    padding: Literal["same", "valid"] = "same"


class MaxPool2DLayer(ContractModel):
    type: Literal["max_pool2d"]
    pool_size: Integer = Field(default=2, ge=1, le=8)


class FlattenLayer(ContractModel):
    type: Literal["flatten"]


class DropoutLayer(ContractModel):
    type: Literal["dropout"]
    rate: Rate


class BatchNormLayer(ContractModel):
    type: Literal["batch_norm"]


LayerSpec = Annotated[
    DenseLayer | Conv2DLayer | MaxPool2DLayer | FlattenLayer | DropoutLayer | BatchNormLayer,
    Field(discriminator="type"),
]


class LayersSpec(ContractModel):
    """A list of layers; the output Dense(classes) is added after the last one. Conv2D and
    max pooling need image data and must not shrink it below one pixel."""

    preset: Literal["layers"]
    layers: list[LayerSpec] = Field(min_length=1, max_length=64)


class UploadedModelSpec(ContractModel):
    """A Keras model you uploaded (POST /models), by its id. `weights`: "file" starts every
    arm from the weights in the file (optimizers compared for fine-tuning); "reinitialize"
    draws fresh weights from each run's seed with every layer's own initializers. Either way
    the arms of one seed start from the same weights."""

    id: uuid.UUID = Field(strict=False, description="The id POST /models gave.")
    weights: Literal["file", "reinitialize"] = "file"


def _model_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "upload" if "id" in value else value.get("preset")
    if isinstance(value, UploadedModelSpec):
        return "upload"
    return getattr(value, "preset", None)


ModelSpec = Annotated[
    Annotated[MlpSpec, Tag("mlp")]
    | Annotated[CnnSpec, Tag("cnn")]
    | Annotated[LayersSpec, Tag("layers")]
    | Annotated[UploadedModelSpec, Tag("upload")],
    Discriminator(
        _model_kind,
        custom_error_type="model",
        custom_error_message="a model is {'preset': 'mlp' | 'cnn' | 'layers', ...} or "
        "{'id': ...} of a Keras model you uploaded",
    ),
]
MODEL_NOTES = {
    "mlp": MlpSpec.__doc__,
    "cnn": CnnSpec.__doc__,
    "layers": LayersSpec.__doc__,
}


def check_model_fits(
    model: MlpSpec | CnnSpec | LayersSpec | UploadedModelSpec, input_shape: tuple[int, ...]
) -> None:
    """ValueError when the model's layers cannot take the dataset's input."""
    if isinstance(model, CnnSpec):
        if len(input_shape) != 3:
            raise ValueError("the cnn preset needs image data; this dataset gives vectors")
        side = min(input_shape[:2])
        if side < 2 ** len(model.filters):
            raise ValueError(
                f"{len(model.filters)} conv blocks halve {side}x{side} images below 1 pixel"
            )
    if isinstance(model, LayersSpec):
        height, width = (input_shape[0], input_shape[1]) if len(input_shape) == 3 else (0, 0)
        spatial = len(input_shape) == 3
        for i, layer in enumerate(model.layers):
            if isinstance(layer, Conv2DLayer | MaxPool2DLayer):
                if not spatial:
                    raise ValueError(f"layers[{i}] ({layer.type}) needs image input here")
                if isinstance(layer, MaxPool2DLayer):
                    height, width = height // layer.pool_size, width // layer.pool_size
                elif layer.padding == "valid":
                    cut = layer.kernel_size - 1
                    height, width = height - cut, width - cut
                if height < 1 or width < 1:
                    raise ValueError(f"layers[{i}] ({layer.type}) shrinks the image below 1 pixel")
            elif isinstance(layer, FlattenLayer):
                spatial = False
