"""The registry of job kinds: found in their folders, told apart by `kind` (or a field that
implies one), and one query model that says which kinds read each parameter."""

import pytest
from pydantic import BaseModel, ValidationError

from core.errors import NotFound
from core.kinds import (
    KINDS,
    RECORD_ITEMS,
    ComparisonParams,
    PlotParams,
    merged_params,
    params_for,
    parse_job,
)
from core.kinds.race.spec import RaceSpec
from core.kinds.train.spec import TrainSpec


def test_every_kind_in_the_folder_is_found_with_train_first() -> None:
    assert next(iter(KINDS)) == "train" and {"train", "race"} <= set(KINDS)
    assert set(RECORD_ITEMS) == set(KINDS)
    for kind in KINDS.values():
        assert kind.spec.model_fields["kind"].default == kind.name
        assert kind.record.position_field in kind.record.model_fields


def test_a_body_names_its_kind_or_implies_it_and_train_is_the_default() -> None:
    assert isinstance(parse_job({"optimizers": ["adam"]}), TrainSpec)
    assert isinstance(
        parse_job({"objective": {"function": "saddle"}, "optimizers": ["sgd"]}), RaceSpec
    )
    race = parse_job({"kind": "race", "objective": {"function": "beale"}, "optimizers": ["sgd"]})
    assert isinstance(race, RaceSpec)
    kinds = "kind must be one of 'train', 'lr_range', 'race', 'tune'"
    with pytest.raises(ValidationError, match=kinds):
        parse_job({"kind": "tuning", "optimizers": ["sgd"]})
    with pytest.raises(ValidationError):  # a training job has no objective
        parse_job({"kind": "train", "objective": {"function": "beale"}, "optimizers": ["sgd"]})


def test_parameters_say_which_kinds_read_them_and_each_kind_gets_only_its_own() -> None:
    fields = ComparisonParams.model_fields
    assert "(train jobs)" in (fields["metric"].description or "")
    assert "(race jobs)" in (fields["tolerance"].description or "")
    assert "(train, lr_range, race jobs)" in (fields["optimizer"].description or "")  # not tune's
    assert "(train, tune jobs)" in (fields["test"].description or "")
    assert set(PlotParams.model_fields) == {"metric", "x", "view", "target"}
    asked = ComparisonParams.model_validate({"tolerance": 0.5, "optimizer": ["adam"]})
    race = params_for("race", KINDS["race"].comparison_params, asked)
    assert race.model_dump() == {"optimizer": ["adam"], "tolerance": 0.5}
    train = params_for("train", KINDS["train"].comparison_params, asked)
    assert train.metric is None and train.optimizer == ["adam"]  # type: ignore[attr-defined]


def test_parameters_of_one_name_merge_their_choices_or_refuse_to() -> None:
    from typing import Literal

    class A(BaseModel):
        metric: Literal["loss"] = "loss"

    class B(BaseModel):
        metric: Literal["f"] = "f"

    class C(BaseModel):
        metric: int = 0

    merged = merged_params("M", {"a": A, "b": B})
    assert merged.model_validate({"metric": "f"}).metric == "f"  # type: ignore[attr-defined]
    assert merged.model_validate({}).metric is None  # type: ignore[attr-defined]  # each its own
    with pytest.raises(NotFound, match="a b job has no metric 'loss'"):
        params_for("b", B, merged.model_validate({"metric": "loss"}))
    with pytest.raises(TypeError, match="disagree on the type of the parameter 'metric'"):
        merged_params("M", {"a": A, "c": C})
