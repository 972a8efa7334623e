"""/datasets and /models of one's own (multipart uploads, checked before anything is kept) and
/runs/{id}/model.keras (a trained model to download)."""

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile, status
from fastapi.responses import StreamingResponse

from api.auth import PrincipalDep, require_principal
from api.deps import ERRORS, SessionDep, SettingsDep, StoreDep
from api.schemas import ErrorOut, UploadedDatasetOut, UploadedModelOut
from api.services import uploads
from core.contract import TEXT_PATTERN

router = APIRouter(tags=["uploads"], dependencies=[Depends(require_principal)], responses=ERRORS)


Name = Annotated[
    str | None,
    Form(
        min_length=1,
        max_length=200,
        pattern=TEXT_PATTERN,
        description="Defaults to the file's name.",
    ),
]
IN_USE: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorOut, "description": "Queued or running jobs use it (named)."}
}
CREATED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The same file was uploaded before: that upload."}
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such upload (another owner's included)."}
}


def _answer(response: Response, created: bool) -> None:
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK


@router.post("/datasets", status_code=201, response_model=UploadedDatasetOut, responses=CREATED)
def upload_dataset(
    file: Annotated[
        UploadFile,
        File(
            description="An .npz (x_train, y_train, optionally x_val, y_val, x_test, "
            "y_test) or a .csv with a header row."
        ),
    ],
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    principal: PrincipalDep,
    response: Response,
    name: Name = None,
    label: Annotated[
        str | None,
        Form(
            min_length=1,
            max_length=200,
            pattern=TEXT_PATTERN,
            description="A CSV's label column; defaults to the last.",
        ),
    ] = None,
    task: Annotated[
        Literal["classification", "regression"] | None,
        Form(
            description="Default: classification when every label is an integer, else "
            "regression (numeric targets)."
        ),
    ] = None,
) -> UploadedDatasetOut:
    """Upload a dataset of your own; a job trains on it as `"dataset": {"id": "<id>"}`.

    Every value is checked before anything is kept (numbers only, no pickles, matching
    lengths, no NaN or infinity, class labels integers 0..C-1, no empty split); a refusal
    names the problem. What a file holds cannot be stated in this schema: any bytes are a binary
    string here, and a file that fails a check is answered 422.
    """
    found, created = uploads.add_dataset(
        session,
        settings,
        store,
        principal,
        uploads.Incoming(file.file, file.filename),
        name=name,
        label=label,
        task=task,
    )
    _answer(response, created)
    return found


@router.get("/datasets/{dataset_id}", response_model=UploadedDatasetOut, responses=NOT_FOUND)
def get_dataset(
    dataset_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> UploadedDatasetOut:
    """One of your uploaded datasets."""
    return UploadedDatasetOut.of(uploads.visible(session, principal, "dataset", dataset_id))


@router.delete(
    "/datasets/{dataset_id}",
    status_code=204,
    responses={**NOT_FOUND, **IN_USE},
)
def delete_dataset(
    dataset_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: PrincipalDep
) -> None:
    """Delete an uploaded dataset (refused while a queued or running job uses it)."""
    uploads.delete(session, store, principal, "dataset", dataset_id)


@router.post("/models", status_code=201, response_model=UploadedModelOut, responses=CREATED)
def upload_model(
    file: Annotated[UploadFile, File(description="A Keras 3 .keras file of Keras's own layers.")],
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    principal: PrincipalDep,
    response: Response,
    name: Name = None,
) -> UploadedModelOut:
    """Upload a Keras model; a job trains it as `"model": {"id": "<id>", "weights": "file" |
    "reinitialize"}`. It is checked without running any of it: Lambda layers and custom
    objects are refused by name, and the worker loads it in Keras's safe mode."""
    found, created = uploads.add_model(
        session, settings, store, principal, uploads.Incoming(file.file, file.filename), name=name
    )
    _answer(response, created)
    return found


@router.get("/models/uploaded", response_model=list[UploadedModelOut])
def list_uploaded_models(session: SessionDep, principal: PrincipalDep) -> list[UploadedModelOut]:
    """Your uploaded models, newest first (GET /models lists the presets)."""
    return [UploadedModelOut.of(u) for u in uploads.owned(session, principal, "model")]


@router.get("/models/{model_id}", response_model=UploadedModelOut, responses=NOT_FOUND)
def get_model(
    model_id: uuid.UUID, session: SessionDep, principal: PrincipalDep
) -> UploadedModelOut:
    """One of your uploaded models."""
    return UploadedModelOut.of(uploads.visible(session, principal, "model", model_id))


@router.delete(
    "/models/{model_id}",
    status_code=204,
    responses={**NOT_FOUND, **IN_USE},
)
def delete_model(
    model_id: uuid.UUID, session: SessionDep, store: StoreDep, principal: PrincipalDep
) -> None:
    """Delete an uploaded model (refused while a queued or running job uses it)."""
    uploads.delete(session, store, principal, "model", model_id)


@router.get(
    "/runs/{run_id}/model.keras",
    response_class=StreamingResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The .keras file."},
        409: {"model": ErrorOut, "description": "The run has not finished training."},
        410: {"model": ErrorOut, "description": "Kept past its retention: deleted."},
    },
)
def download_model(
    run_id: uuid.UUID,
    session: SessionDep,
    settings: SettingsDep,
    store: StoreDep,
    principal: PrincipalDep,
) -> StreamingResponse:
    """A finished run's trained model (with its optimizer state): load it with
    `keras.saving.load_model`."""
    chunks = uploads.trained_model(session, settings, store, principal, run_id)
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{run_id}.keras"'},
    )
