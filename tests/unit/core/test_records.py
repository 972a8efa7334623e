import math
import uuid
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY

from core.kinds.train.records import TrainRecord
from core.records import Sequenced
from worker import metrics


def train_record(epoch: int, seconds: float) -> TrainRecord:
    return TrainRecord(
        run_id=uuid.uuid4(),
        epoch=epoch,
        loss=math.inf,
        accuracy=0.5,
        val_loss=None,
        val_accuracy=None,
        learning_rate=0.01,
        epoch_seconds=seconds,
        examples_seen=10 * epoch,
        steps=epoch,
        time=datetime(2026, 12, 7, 4, 0, tzinfo=UTC),
    )


def test_a_record_given_as_text_is_the_record_its_data_is() -> None:
    record = train_record(3, 0.25)
    text = record.stored_json()
    from_text = Sequenced(seq=7, text=text, source=record)
    from_data = Sequenced(seq=7, data=record.stored())
    assert from_text == from_data
    assert from_text.data["loss"] is None  # not finite: null, as it is stored
    assert from_text.of(TrainRecord) == record.model_copy(update={"loss": None})
    assert from_text != Sequenced(seq=8, data=record.stored())
    with pytest.raises(TypeError):
        Sequenced(seq=1)


def sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


@pytest.mark.parametrize("with_source", [True, False])
def test_stored_records_count_their_epochs_whether_parsed_or_not(with_source: bool) -> None:
    records = [train_record(0, 0.0), train_record(1, 0.5), train_record(2, math.nan)]
    stored = [
        Sequenced(seq=i + 1, text=r.stored_json(), source=r if with_source else None)
        for i, r in enumerate(records)
    ]
    names = (
        "optarena_worker_records_total",
        "optarena_worker_epochs_total",
        "optarena_worker_epoch_seconds_count",
        "optarena_worker_epoch_seconds_sum",
    )
    before = [sample(name) for name in names]
    metrics.stored(stored)
    after = [sample(name) for name in names]
    # 3 records; epochs 1 and 2 (epoch 0 is the initial weights); one finite duration
    assert [a - b for a, b in zip(after, before, strict=True)] == [3, 2, 1, 0.5]
