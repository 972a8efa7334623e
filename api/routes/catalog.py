"""What a client may choose: the kinds of job, optimizers with their arguments, datasets and
model presets. The dashboard builds its form from these; nothing here needs a key (with one,
the datasets include the caller's uploads)."""

from typing import Any

from fastapi import APIRouter
from pydantic import TypeAdapter

from api.auth import MaybePrincipalDep
from api.deps import SessionDep
from api.schemas import ArgumentOut, DatasetOut, KindOut, ModelPresetOut, OptimizerOut
from core.architectures import MODEL_NOTES, CnnSpec, LayersSpec, MlpSpec
from core.datasets import DATASET_NOTES, KERAS_DATASETS, SyntheticDatasetSpec
from core.kinds import KINDS
from core.optimizers import (
    OPTIMIZER_CLASSES,
    OPTIMIZER_PARAMS,
    REQUIRED,
    Param,
    optimizer_params,
)
from core.repositories import UploadRepository

router = APIRouter(tags=["catalog"])


def _argument(name: str, param: Param) -> ArgumentOut:
    return ArgumentOut(
        name=name,
        type=param.kind,
        default=None if param.default is REQUIRED else param.default,
        minimum=param.low,
        maximum=param.high,
        exclusive_minimum=param.low_open,
        exclusive_maximum=param.high_open,
        nullable=param.nullable,
    )


@router.get("/kinds", response_model=list[KindOut])
def list_kinds() -> list[KindOut]:
    """The kinds of job, each with its schema, examples and what its charts show."""
    return [
        KindOut(
            name=kind.name,
            summary=kind.summary,
            unit=kind.unit,
            metrics=list(kind.metrics),
            lower_is_better=sorted(kind.lower_is_better),
            x_axes=list(kind.x_axes),
            picture=kind.picture,
            views=list(kind.views),
            job_schema=kind.spec.model_json_schema(),
            examples={name: example["value"] for name, example in kind.examples.items()},
        )
        for kind in KINDS.values()
    ]


@router.get("/optimizers", response_model=list[OptimizerOut])
def list_optimizers() -> list[OptimizerOut]:
    """Every optimizer a job may name, with each argument's type, default and bounds (Keras's
    own). Any optimizer also takes `label`, and the Keras 2 spellings `lr` and `decay`."""
    return [
        OptimizerOut(
            name=name,
            keras_class=OPTIMIZER_CLASSES[name],
            arguments=[_argument(k, p) for k, p in optimizer_params(name).items()],
        )
        for name in OPTIMIZER_PARAMS
    ]


@router.get(
    "/datasets",
    response_model=list[DatasetOut],
    # The key is optional here: without one, the built-in datasets.
    openapi_extra={"security": [{}]},
)
def list_datasets(session: SessionDep, principal: MaybePrincipalDep) -> list[DatasetOut]:
    """The datasets a job may train on: the built-in ones, and with an API key your uploads
    (newest first; a job names one by its id)."""
    named = [
        DatasetOut(
            name=name,
            input_shape=list(info.input_shape),
            classes=info.num_classes,
            train_examples=info.train_examples,
            test_examples=info.test_examples,
            note=DATASET_NOTES[name],
        )
        for name, info in KERAS_DATASETS.items()
    ]
    synthetic = DatasetOut(
        name="synthetic",
        input_shape=None,
        classes=None,
        train_examples=None,
        note=SyntheticDatasetSpec.__doc__ or "",
    )
    own = [
        DatasetOut(
            name=u.name,
            id=u.id,
            input_shape=u.meta["input_shape"],
            classes=u.meta["classes"],
            train_examples=u.meta["splits"]["train"],
            test_examples=u.meta["splits"]["test"] or None,
            note=f"uploaded {u.created_at:%Y-%m-%d %H:%M} UTC: {u.meta['format']}, {u.bytes} bytes",
        )
        for u in (UploadRepository(session).owned(principal, "dataset") if principal else [])
    ]
    return [*named, synthetic, *own]


@router.get("/models", response_model=list[ModelPresetOut])
def list_models() -> list[ModelPresetOut]:
    """The model presets: each builds a Keras model ending in Dense(classes) logits."""
    schemas: dict[str, Any] = {
        "mlp": TypeAdapter(MlpSpec).json_schema(),
        "cnn": TypeAdapter(CnnSpec).json_schema(),
        "layers": TypeAdapter(LayersSpec).json_schema(),
    }
    return [
        ModelPresetOut(
            preset=preset,
            description=" ".join((MODEL_NOTES[preset] or "").split()),
            job_schema=schemas[preset],
        )
        for preset in schemas
    ]
