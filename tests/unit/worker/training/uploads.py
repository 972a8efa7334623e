"""The uploads of a small classifier and its data as the worker is handed them: a dataset of
four features and three classes at uploads/datasets/d.npz, a softmax model at
uploads/models/m.keras (the tests write the files)."""

import uuid

from core.uploads import Stored

DATA_ID, MODEL_ID = uuid.UUID(int=1), uuid.UUID(int=2)
UPLOADS = {
    DATA_ID: Stored(
        "uploads/datasets/d.npz",
        {"format": "npz", "task": "classification", "classes": 3, "input_shape": [4]},
    ),
    MODEL_ID: Stored("uploads/models/m.keras", {"output_activation": "softmax"}),
}
