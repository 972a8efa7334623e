"""Checking uploads without trusting them: datasets (`.npz`, `.csv`) read as a stream of numbers,
Keras models (`.keras`) read as JSON. Nothing here imports Keras or unpickles anything; a file
that fails a check is refused with the reason, and nothing of it is kept.
"""

import codecs
import csv
import io
import json
import math
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import numpy as np

from core.errors import Invalid

CHUNK_ELEMENTS = 1 << 18
SPLITS = ("train", "val", "test")
ARRAYS = tuple(f"{axis}_{split}" for split in SPLITS for axis in ("x", "y"))
MAX_CLASSES = 100_000
Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class Stored:
    """An upload as a worker needs it: where its bytes are, and its facts."""

    key: str
    meta: dict[str, Any]


class BadUpload(Invalid):
    """The upload is refused; the message says why (a 422 naming the problem)."""


@dataclass
class DatasetFacts:
    """What the API knows of an uploaded dataset: enough to check a job against it."""

    format: Literal["npz", "csv"]
    task: Task
    input_shape: list[int]
    classes: int | None
    splits: dict[str, int]
    label: str | None = None  # a CSV's label column
    columns: list[str] = field(default_factory=list)

    def meta(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "task": self.task,
            "input_shape": self.input_shape,
            "classes": self.classes,
            "splits": self.splits,
            "label": self.label,
            "columns": self.columns,
        }


# ---------------------------------------------------------------- npz


@dataclass
class _Column:
    """Running checks over one array's values, chunk by chunk."""

    name: str
    integral: bool = True
    low: float = math.inf
    high: float = -math.inf

    def add(self, values: np.ndarray) -> None:
        if values.size == 0:
            return
        if values.dtype.kind == "f":
            if not np.isfinite(values).all():
                raise BadUpload(f"{self.name} holds NaN or infinite values")
            self.integral = self.integral and bool(np.all(values == np.round(values)))
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))


def _npy_chunks(member: IO[bytes], name: str) -> tuple[tuple[int, ...], np.dtype, Iterator[Any]]:
    """The shape and dtype of one `.npy` member, and its values in chunks (never all at once)."""
    try:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(member)
        elif version in ((2, 0), (3, 0)):
            shape, _, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            raise ValueError(f"unknown .npy version {version}")
    except ValueError as error:
        if "allow_pickle" in str(error) or "object" in str(error).lower():
            raise BadUpload(
                f"{name} is an object (pickled) array; only numbers are accepted"
            ) from error
        raise BadUpload(f"{name} is not a readable .npy array ({error})") from error
    if dtype.hasobject:
        raise BadUpload(f"{name} is an object (pickled) array; only numbers are accepted")
    if dtype.kind not in "biuf":
        raise BadUpload(f"{name} has dtype {dtype}; only numeric arrays are accepted")

    def chunks() -> Iterator[Any]:
        left = math.prod(shape)
        while left:
            n = min(left, CHUNK_ELEMENTS)
            raw = member.read(n * dtype.itemsize)
            if len(raw) != n * dtype.itemsize:
                raise BadUpload(f"{name} is truncated")
            left -= n
            yield np.frombuffer(raw, dtype=dtype)

    return tuple(shape), dtype, chunks()


def check_npz(
    source: IO[bytes], *, task: Task | None = None, max_expanded: int | None = None
) -> DatasetFacts:
    """An `.npz` with x_train, y_train and optionally x_val, y_val, x_test, y_test; a
    compressed one may expand to at most `max_expanded` bytes."""
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as error:
        raise BadUpload("not an .npz file (it is not a zip archive of .npy arrays)") from error
    with archive:
        expanded = sum(i.file_size for i in archive.infolist())
        if max_expanded is not None and expanded > max_expanded:
            raise BadUpload(
                f"the arrays expand to {expanded} bytes, over the limit of {max_expanded} "
                "(ten times OPTARENA_MAX_UPLOAD_BYTES)"
            )
        names = {i.filename.removesuffix(".npy"): i for i in archive.infolist()}
        unknown = sorted(set(names) - set(ARRAYS))
        if unknown:
            raise BadUpload(
                f"unknown arrays {', '.join(unknown)}: an .npz holds x_train, y_train and "
                "optionally x_val, y_val, x_test, y_test"
            )
        for required in ("x_train", "y_train"):
            if required not in names:
                raise BadUpload(f"{required} is missing; an .npz needs x_train and y_train")
        for split in ("val", "test"):
            if (f"x_{split}" in names) != (f"y_{split}" in names):
                raise BadUpload(f"x_{split} and y_{split} come together; one is missing")
        shapes: dict[str, tuple[int, ...]] = {}
        labels: dict[str, _Column] = {}
        for key in ARRAYS:
            if key not in names:
                continue
            with archive.open(names[key]) as member:
                shape, _, chunks = _npy_chunks(member, key)
                column = _Column(key)
                for values in chunks:
                    column.add(values)
            shapes[key] = shape
            if key.startswith("y_"):
                labels[key] = column
    return _facts_of_arrays(shapes, labels, task)


def _facts_of_arrays(
    shapes: dict[str, tuple[int, ...]],
    labels: dict[str, "_Column"],
    task: Task | None,
) -> DatasetFacts:
    splits: dict[str, int] = {}
    input_shape = shapes["x_train"][1:]
    for split in SPLITS:
        x, y = shapes.get(f"x_{split}"), shapes.get(f"y_{split}")
        if x is None or y is None:
            continue
        if not x or x[0] == 0:
            raise BadUpload(f"the {split} split is empty")
        if len(y) != 1 and not (len(y) == 2 and y[1] == 1):
            raise BadUpload(
                f"y_{split} has shape {list(y)}; labels are one value per example "
                "(class indices, not one-hot rows)"
            )
        if y[0] != x[0]:
            raise BadUpload(
                f"x_{split} has {x[0]} examples and y_{split} {y[0]}: the lengths differ"
            )
        if x[1:] != input_shape:
            raise BadUpload(
                f"x_{split} examples have shape {list(x[1:])}, x_train's {list(input_shape)}"
            )
        splits[split] = x[0]
    integral = all(c.integral for c in labels.values())
    chosen: Task = task or ("classification" if integral else "regression")
    classes = None
    if chosen == "classification":
        classes = _classes(labels)
    return DatasetFacts(
        format="npz",
        task=chosen,
        input_shape=list(input_shape),
        classes=classes,
        splits={s: splits.get(s, 0) for s in SPLITS},
    )


def _classes(labels: dict[str, _Column]) -> int:
    for column in labels.values():
        if not column.integral:
            raise BadUpload(
                f"{column.name} holds non-integer values; classification labels are "
                "integers 0..C-1 (upload with task=regression for numeric targets)"
            )
        if column.low < 0:
            raise BadUpload(f"{column.name} holds {column.low:g}; class labels start at 0")
    count = int(max(c.high for c in labels.values())) + 1
    if count < 2:
        raise BadUpload("the labels name one class; classification needs at least two")
    if count > MAX_CLASSES:
        raise BadUpload(f"the labels name {count} classes; at most {MAX_CLASSES} are accepted")
    return count


# ---------------------------------------------------------------- csv


def check_csv(source: IO[bytes], *, label: str | None, task: Task | None = None) -> DatasetFacts:
    """A `.csv` with a header row: numeric feature columns and the label column (by default
    the last), read a row at a time."""
    text = io.TextIOWrapper(source, encoding="utf-8", newline="")
    try:
        reader = csv.reader(text)
        try:
            header = next(reader)
        except StopIteration:
            raise BadUpload("the CSV is empty; it needs a header row and data rows") from None
        header = [h.strip() for h in header]
        if len(header) < 2:
            raise BadUpload("the CSV needs a header row with feature columns and a label column")
        chosen_label = label.strip() if label is not None else header[-1]
        if chosen_label not in header:
            raise BadUpload(f"no column {chosen_label!r}; the header has {', '.join(header[:20])}")
        at = header.index(chosen_label)
        column = _Column(f"label column {chosen_label!r}")
        rows = 0
        for number, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise BadUpload(f"row {number} has {len(row)} fields; the header has {len(header)}")
            try:
                values = np.array([float(v) for v in row])
            except ValueError:
                bad = next(v for v in row if not _is_number(v))
                raise BadUpload(f"row {number}: {bad[:40]!r} is not a number") from None
            if not np.isfinite(values).all():
                raise BadUpload(f"row {number} holds NaN or infinite values")
            column.add(values[at : at + 1])
            rows += 1
    except UnicodeDecodeError as error:
        raise BadUpload("not a CSV file: it is not UTF-8 text") from error
    except csv.Error as error:
        raise BadUpload(f"not a readable CSV file ({error})") from error
    finally:
        text.detach()
    if rows == 0:
        raise BadUpload("the train split is empty: the CSV has a header but no rows")
    chosen: Task = task or ("classification" if column.integral else "regression")
    classes = _classes({"y": column}) if chosen == "classification" else None
    return DatasetFacts(
        format="csv",
        task=chosen,
        input_shape=[len(header) - 1],
        classes=classes,
        splits={"train": rows, "val": 0, "test": 0},
        label=chosen_label,
        columns=header,
    )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def dataset_format(filename: str | None, head: bytes) -> Literal["npz", "csv"]:
    """npz by its zip signature; otherwise text is read as CSV and anything else refused."""
    if head.startswith(b"PK"):
        return "npz"
    if (filename or "").lower().endswith(".npz"):
        raise BadUpload("not an .npz file (it is not a zip archive of .npy arrays)")
    try:
        # Incremental: the head may end inside a character.
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        binary = True
    else:
        binary = b"\x00" in head
    if binary:
        raise BadUpload(
            f"{filename or 'the file'} is neither an .npz (a zip archive) nor a .csv (text)"
        )
    return "csv"


# ---------------------------------------------------------------- .keras models


@dataclass
class ModelFacts:
    input_shape: list[int | None]
    outputs: int
    output_activation: str
    parameters: int
    layers: int

    def meta(self) -> dict[str, Any]:
        return {
            "input_shape": self.input_shape,
            "outputs": self.outputs,
            "output_activation": self.output_activation,
            "parameters": self.parameters,
            "layers": self.layers,
        }


REFUSED_CLASSES = {"Lambda", "__lambda__", "TFOpLambda", "function", "SlicingOpLambda"}
PASS_THROUGH = {"Activation", "Softmax", "Dropout", "Identity", "ActivityRegularization"}


def check_keras(source: IO[bytes]) -> ModelFacts:
    """A Keras 3 `.keras` file whose every object is one of Keras's own classes."""
    try:
        archive = zipfile.ZipFile(source)
    except zipfile.BadZipFile as error:
        raise BadUpload("not a .keras file (a Keras 3 model is a zip archive)") from error
    with archive:
        names = set(archive.namelist())
        for required in ("config.json", "metadata.json"):
            if required not in names:
                raise BadUpload(
                    f"not a Keras 3 .keras file: {required} is missing (save the model with "
                    "model.save('model.keras') in Keras 3)"
                )
        try:
            config = json.loads(archive.read("config.json"))
            json.loads(archive.read("metadata.json"))
        except ValueError as error:
            raise BadUpload(f"config.json or metadata.json is not JSON ({error})") from error
        _refuse_foreign(config, layer="the model")
        parameters = _parameters(archive) if "model.weights.h5" in names else 0
    if config.get("class_name") not in ("Sequential", "Functional", "Model"):
        raise BadUpload(
            f"the model is a {config.get('class_name')!r}; Sequential and functional models "
            "are accepted"
        )
    layers = config.get("config", {}).get("layers", [])
    if not layers:
        raise BadUpload("the model has no layers")
    input_shape = _input_shape(config)
    outputs, activation = _output(config)
    return ModelFacts(
        input_shape=input_shape,
        outputs=outputs,
        output_activation=activation,
        parameters=parameters,
        layers=len(layers),
    )


def _refuse_foreign(node: Any, *, layer: str) -> None:
    """Every serialized object must be Keras's own: no Lambda, no custom or registered class."""
    if isinstance(node, list):
        for item in node:
            _refuse_foreign(item, layer=layer)
        return
    if not isinstance(node, dict):
        return
    class_name = node.get("class_name")
    if isinstance(class_name, str):
        inner = node.get("config")
        if isinstance(inner, dict) and isinstance(inner.get("name"), str) and "module" in node:
            layer = f"{class_name} layer {inner['name']!r}"
        module = node.get("module")
        registered = node.get("registered_name")
        if class_name in REFUSED_CLASSES:
            raise BadUpload(
                f"{layer} is a {class_name}: it holds Python code, which is never run here; "
                "use Keras's own layers"
            )
        if module is None and not (class_name.startswith("__") and class_name.endswith("__")):
            raise BadUpload(f"{layer} uses {class_name!r}, which is not one of Keras's classes")
        if module is not None and not (module == "keras" or str(module).startswith("keras.")):
            raise BadUpload(
                f"{layer} is a custom object ({module}.{class_name}); only Keras's own classes "
                "are accepted"
            )
        if registered is not None and registered != class_name and ">" in str(registered):
            raise BadUpload(
                f"{layer} is registered as {registered!r}, outside Keras; only Keras's own "
                "classes are accepted"
            )
    for key, value in node.items():
        if key != "class_name":
            _refuse_foreign(value, layer=layer)


def _input_shape(config: dict[str, Any]) -> list[int | None]:
    inner = config.get("config", {})
    for layer in inner.get("layers", []):
        if layer.get("class_name") == "InputLayer":
            shape = layer.get("config", {}).get("batch_shape") or layer.get("config", {}).get(
                "batch_input_shape"
            )
            if shape:
                return list(shape[1:])
    built = config.get("build_config", {}).get("input_shape")
    if built:
        return list(built[1:])
    raise BadUpload("the model has no input shape: build it (keras.Input) before saving")


def _output(config: dict[str, Any]) -> tuple[int, str]:
    """The output layer's units and activation (following pass-through layers back)."""
    inner = config.get("config", {})
    layers = inner.get("layers", [])
    by_name = {layer.get("config", {}).get("name"): layer for layer in layers}
    outputs = inner.get("output_layers")
    if config.get("class_name") == "Sequential" or not outputs:
        chain = list(reversed(layers))
    else:
        if len(outputs) != 1:
            raise BadUpload("the model has several outputs; one output is accepted")
        chain = []
        current = by_name.get(outputs[0][0])
        while current is not None and len(chain) < len(layers):
            chain.append(current)
            nodes = current.get("inbound_nodes") or []
            history = _first_history(nodes)
            current = by_name.get(history) if history else None
    activation = None
    for layer in chain:
        cls, cfg = layer.get("class_name"), layer.get("config", {})
        if cls == "Softmax":
            activation = activation or "softmax"
            continue
        if cls == "Activation":
            activation = activation or str(cfg.get("activation"))
            continue
        if cls in PASS_THROUGH:
            continue
        if isinstance(cfg.get("units"), int):
            found = activation or cfg.get("activation") or "linear"
            return int(cfg["units"]), str(found)
        break
    raise BadUpload("the model's output is not a Dense layer (it must end in Dense(classes))")


def _first_history(node: Any) -> str | None:
    if isinstance(node, dict):
        history = node.get("keras_history")
        if isinstance(history, list) and history:
            return str(history[0])
        for value in node.values():
            found = _first_history(value)
            if found:
                return found
    if isinstance(node, list):
        for item in node:
            found = _first_history(item)
            if found:
                return found
    return None


def _parameters(archive: zipfile.ZipFile) -> int:
    """The number of weights in model.weights.h5 (read with h5py: data only, no code)."""
    import h5py  # only when a model is uploaded: the API starts without it

    with tempfile.NamedTemporaryFile(suffix=".h5") as local:
        with archive.open("model.weights.h5") as member:
            while block := member.read(1 << 20):
                local.write(block)
        local.flush()
        total = 0
        try:
            with h5py.File(local.name, "r") as weights:

                def count(_: str, item: Any) -> None:
                    nonlocal total
                    if isinstance(item, h5py.Dataset):
                        total += int(item.size)

                weights.visititems(count)
        except OSError as error:
            raise BadUpload(f"model.weights.h5 is not a readable weights file ({error})") from error
    return total


def fits(
    model_shape: list[int | None],
    outputs: int,
    dataset_shape: list[int],
    needed: int,
    task: str = "classification",
) -> str | None:
    """Why the model cannot train on the dataset, or None when it can."""
    if len(model_shape) != len(dataset_shape) or any(
        m is not None and m != d for m, d in zip(model_shape, dataset_shape, strict=False)
    ):
        return (
            f"the model takes inputs of shape {model_shape} and the dataset's examples have "
            f"shape {dataset_shape}"
        )
    if outputs != needed:
        what = "a regression needs one" if task == "regression" else f"this job needs {needed}"
        return f"the model has {outputs} outputs and {what}"
    return None
