"""The client's own logic, against a fake server (httpx.MockTransport): the server is not what
these tests are about; tests/e2e/test_client.py runs it against the real one."""

import json
from typing import Any

import httpx
import pytest
from optarena_client import ApiError, Client
from optarena_client.client import Comparison, Plot, job_id

RUN = {"id": "r1", "label": "adam", "arm": 0, "seed": 3, "batch_size": 32}


def ndjson_server(pages: list[tuple[list[dict[str, Any]], int, bool]]) -> httpx.MockTransport:
    """A job with one run whose records come in these (records, next cursor, done) pages."""
    asked: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jobs/j1":
            return httpx.Response(200, json={"id": "j1", "runs": [RUN], "unit": "epoch"})
        after = int(request.url.params["after"])
        asked.append(after)
        records, following, done = pages[len(asked) - 1]
        return httpx.Response(
            200,
            text="".join(json.dumps(r) + "\n" for r in records),
            headers={"optarena-next-cursor": str(following), "optarena-done": str(done).lower()},
        )

    transport = httpx.MockTransport(handle)
    transport.asked = asked  # type: ignore[attr-defined]
    return transport


def record(cursor: int, epoch: int) -> dict[str, Any]:
    return {"cursor": str(cursor), "run_id": "r1", "epoch": epoch, "val_loss": 1.0 / (epoch + 1)}


def test_records_follow_the_cursor_until_the_server_has_no_more() -> None:
    transport = ndjson_server([([record(1, 0), record(2, 1)], 2, False), ([], 2, False)])
    found = Client("http://api", transport=transport).records({"id": "j1"})
    assert [r["cursor"] for r in found] == ["1", "2"]
    assert transport.asked == [0, 2]  # type: ignore[attr-defined]


def test_records_stop_when_the_job_is_done() -> None:
    transport = ndjson_server([([record(1, 0)], 1, False), ([record(2, 1)], 2, True)])
    assert len(Client("http://api", transport=transport).records("j1")) == 2
    assert transport.asked == [0, 1]  # type: ignore[attr-defined]


def test_metrics_rows_carry_their_runs_arm_and_seed() -> None:
    transport = ndjson_server([([record(1, 0), record(2, 1)], 2, True)])
    frame = Client("http://api", transport=transport).metrics("j1")
    assert frame.label.tolist() == ["adam", "adam"] and frame.seed.tolist() == [3, 3]
    assert frame.cursor.tolist() == [1, 2] and frame.val_loss.iloc[1] == 0.5


def test_the_ranking_frame_spreads_summaries_over_seeds_into_columns() -> None:
    summary = {"n": 2, "mean": 0.9, "std": 0.01, "ci_low": 0.8, "ci_high": 1.0, "values": [1]}
    answer = {
        "kind": "train",
        "ranking": [{"rank": 1, "label": "adam", "test": summary, "optimizer": {"name": "adam"}}],
        "table": {"title": "t", "columns": [], "rows": [], "note": ""},
    }
    frame = Comparison(answer).ranking_frame()
    assert frame.columns.tolist() == [
        "rank", "label", "test_mean", "test_std", "test_ci_low", "test_ci_high", "test_n"
    ]  # fmt: skip


def test_a_kind_without_a_ranking_list_gives_its_table() -> None:
    table = {
        "title": "t",
        "columns": [{"key": "arm", "title": "arm"}, {"key": "usable", "title": "usable"}],
        "rows": [{"arm": "sgd", "usable": "1e-3 .. 1e-1"}],
        "note": "n",
    }
    comparison = Comparison({"kind": "lr_range", "table": table})
    assert comparison.ranking_frame().to_dict("records") == [
        {"arm": "sgd", "usable": "1e-3 .. 1e-1"}
    ]
    assert "<td>1e-3 .. 1e-1</td>" in comparison._repr_html_()


def test_a_plot_shows_itself_in_its_format_only() -> None:
    png, svg = Plot(b"\x89PNG", "png"), Plot(b"<svg/>", "svg")
    assert png._repr_png_() == b"\x89PNG" and png._repr_svg_() is None
    assert svg._repr_svg_() == "<svg/>" and svg._repr_png_() is None


def test_errors_are_the_servers_words() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(422, json={"message": "epochs.0: too small"})

    with pytest.raises(ApiError, match=r"epochs\.0: too small") as raised:
        Client("http://api", transport=httpx.MockTransport(handle)).submit({"epochs": [0]})
    assert raised.value.status == 422


def test_the_url_and_key_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPTARENA_URL", "http://elsewhere:9000/")
    monkeypatch.setenv("OPTARENA_API_KEY", "oa_env")
    client = Client()
    assert client.url == "http://elsewhere:9000"
    assert client.http.headers["authorization"] == "Bearer oa_env"


def test_a_job_is_its_id_or_an_answer_carrying_it() -> None:
    assert job_id("j1") == job_id({"id": "j1", "runs": []}) == "j1"


def test_submit_reads_a_job_file_and_says_when_it_cannot(tmp_path: Any) -> None:
    seen: list[Any] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append((json.loads(request.content), request.headers.get("idempotency-key")))
        return httpx.Response(201, json={"id": "j1"})

    client = Client("http://api", transport=httpx.MockTransport(handle))
    (tmp_path / "job.json").write_text('{"optimizers": ["sgd"]}')
    client.submit(tmp_path / "job.json", idempotency_key="hw-1")
    assert seen == [({"optimizers": ["sgd"]}, "hw-1")]
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="one JSON object"):
        client.submit(str(tmp_path / "list.json"))


def sse_server(
    events: list[tuple[str, dict[str, Any]]], runs: list[dict[str, Any]]
) -> httpx.MockTransport:
    """A job whose event stream is these (event, data) and whose runs are these; a second
    read of the job shows a run added while it ran."""
    later = {**RUN, "id": "r2", "seed": 4, "budget": 2, "status": "queued"}
    reads = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/jobs/j1":
            reads.append(1)
            found = runs if len(reads) == 1 else [*runs, later]
            status = "succeeded" if len(reads) > 2 else "running"
            body = {"id": "j1", "unit": "epoch", "metrics": ["val_loss"], "runs": found}
            return httpx.Response(200, json=body | {"status": status})
        text = "".join(
            f"event: {name}\nid: {i}\ndata: {json.dumps(data)}\n\n"
            for i, (name, data) in enumerate(events, start=1)
        )
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handle)


def test_wait_moves_a_bar_per_run_and_adds_the_runs_a_job_adds() -> None:
    from optarena_client import progress

    made: list[progress.TqdmBars] = []

    class Kept(progress.TqdmBars):
        def __init__(self, unit: str) -> None:
            super().__init__(unit)
            made.append(self)

        def close(self) -> None:  # keep the bars readable after the wait
            pass

    first = {**RUN, "budget": 2, "status": "queued"}
    events = [
        ("run", {"run_id": "r1", "status": "running"}),
        ("record", {"run_id": "r1", "epoch": 1, "val_loss": 0.5}),
        ("record", {"run_id": "r1", "epoch": 2, "val_loss": 0.25}),
        ("run", {"run_id": "r1", "status": "succeeded"}),
        ("record", {"run_id": "r2", "epoch": 2, "val_loss": 0.3}),
        ("run", {"run_id": "r2", "status": "failed", "error": "diverged"}),
        ("done", {"status": "succeeded"}),
    ]
    original = progress.TqdmBars
    progress.TqdmBars = Kept  # type: ignore[misc]
    try:
        client = Client("http://api", transport=sse_server(events, [first]))
        done = client.wait("j1", progress="tqdm")
    finally:
        progress.TqdmBars = original  # type: ignore[misc]
    assert done["status"] == "succeeded"
    [bars] = made
    assert {run_id: bar.n for run_id, bar in bars.bars.items()} == {"r1": 2, "r2": 2}
    assert "val_loss 0.25" in bars.bars["r1"].postfix
    assert "[succeeded]" in bars.bars["r1"].desc
    assert "[failed: diverged]" in bars.bars["r2"].desc


def test_progress_is_rich_tqdm_or_none_and_nothing_else() -> None:
    from optarena_client.progress import NoBars, RichBars, make_bars

    assert isinstance(make_bars(False, unit="epoch"), NoBars)
    rich = make_bars(True, unit="epoch")  # not in Jupyter: rich
    assert isinstance(rich, RichBars)
    rich.close()
    with pytest.raises(ValueError, match="'rich' or 'tqdm'"):
        make_bars("bars", unit="epoch")
