"""The dashboard in a real browser (Debian's Chromium, driven by Playwright) against the real
API and worker: submit through the form, watch the curves grow and the table fill."""

import os
import re
import shutil
import signal

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.conftest import ROOT
from tests.e2e.conftest import Service

pytestmark = pytest.mark.e2e

ARTIFACTS = ROOT / "test-artifacts"
# The most points a run has on the val_accuracy chart (each chart's box says, for tests).
POINTS = "() => +(document.querySelector('[data-metric=val_accuracy]')?.dataset.points ?? 0)"


@pytest.fixture
def page() -> Page:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Chromium is not installed; scripts/test installs Debian's chromium package")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 1100})
        yield page
        browser.close()


def sign_in(page: Page, service: Service) -> None:
    page.goto(f"{service.url}/")
    expect(page.locator("h2")).to_have_text("Sign in")
    page.fill("#api-key", "oa_not-a-key")
    page.click("#signin-submit")
    expect(page.locator("#signin-error")).to_contain_text("not valid")
    page.fill("#api-key", service.key)
    page.click("#signin-submit")
    expect(page.locator("h2")).to_have_text("Jobs")
    expect(page.locator("#who")).to_contain_text("e2e")


def test_submit_through_the_form_and_watch_it_live(service: Service, page: Page) -> None:
    sign_in(page, service)
    page.click("#nav-new")

    # The API's 422 message appears next to the field it is about.
    page.fill("#epochs", "0")
    page.click("#submit")
    expect(page.locator('[data-error-for="epochs"]')).to_contain_text("greater than or equal to 1")
    expect(page).to_have_url(re.compile(r"#/new$"))

    page.fill("#name", "from the browser")
    page.fill("#hidden", "32")
    page.fill("#epochs", "6")
    # The worker is paused, so the job page opens on a queued job with nothing to draw; every
    # point that appears later comes over the live stream, with no reload.
    trainer = service.pool_process()
    os.kill(trainer, signal.SIGSTOP)
    try:
        page.click("#submit")
        page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]+$"))
        expect(page.locator("#charts .chart")).to_have_count(5)
        expect(page.locator("#job-status")).to_have_text("queued")
        assert page.evaluate(POINTS) == 0
    finally:
        os.kill(trainer, signal.SIGCONT)
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=300_000)
    page.wait_for_function(f"{POINTS} == 7", timeout=60_000)  # epochs 0..6
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        chart = page.locator(f'[data-metric="{metric}"]')
        expect(chart).to_have_attribute("data-series", "3")
        expect(chart.locator("canvas")).to_have_count(1)
    check_chart_interactions(page)

    table = page.locator("#comparison-table")
    expect(table.locator("tr")).to_have_count(4)
    expect(table).to_contain_text("adam bs=32 epochs=6")
    expect(page.locator("#runs")).to_contain_text("succeeded")

    page.select_option("#x-axis", "seconds")
    page.wait_for_function(f"() => {plot_of('loss')}.axes[0].label === 'seconds'")
    # the x values are now each run's training seconds: growing, not epoch numbers
    xs = page.evaluate(f"() => {plot_of('loss')}.data[0]")
    assert xs == sorted(xs) and any(x != int(x) for x in xs), xs

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    page.goto(f"{service.url}/#/")
    expect(page.locator("#jobs")).to_contain_text("from the browser")


def plot_of(metric: str) -> str:
    return f"document.querySelector('[data-metric={metric}]').uplot"


def check_chart_interactions(page: Page) -> None:
    """uPlot's: a log scale for losses, a tooltip at the cursor, legend toggles, drag to
    zoom kept while data streams, double-click to reset."""
    assert page.evaluate(f"() => {plot_of('val_loss')}.scales.y.distr") == 3  # log
    assert page.evaluate(f"() => {plot_of('val_accuracy')}.scales.y.distr") == 1
    over = page.locator('[data-metric="val_accuracy"] .u-over')
    box = over.bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.5)
    tip = page.locator('[data-metric="val_accuracy"] .u-tip')
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("epoch")
    expect(tip).to_contain_text("adam seed 0: 0.")
    expect(tip).not_to_contain_text("null")

    # (the legend lists the runs only: the x series has no entry)
    legend = page.locator('[data-metric="val_accuracy"] .u-legend .u-series').nth(0)
    legend.locator("th").click()
    assert page.evaluate(f"() => {plot_of('val_accuracy')}.series[1].show") is False
    expect(legend).to_have_class(re.compile("u-off"))
    legend.locator("th").click()
    assert page.evaluate(f"() => {plot_of('val_accuracy')}.series[1].show") is True

    full = page.evaluate(
        f"() => [{plot_of('val_accuracy')}.scales.x.min, {plot_of('val_accuracy')}.scales.x.max]"
    )
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5, steps=5)
    page.mouse.up()
    zoomed = page.evaluate(
        f"() => [{plot_of('val_accuracy')}.scales.x.min, {plot_of('val_accuracy')}.scales.x.max]"
    )
    assert full[0] < zoomed[0] < zoomed[1] < full[1], (full, zoomed)
    over.dblclick()
    reset = page.evaluate(
        f"() => [{plot_of('val_accuracy')}.scales.x.min, {plot_of('val_accuracy')}.scales.x.max]"
    )
    assert reset == full


def test_arms_over_seeds_show_their_mean_curves_with_95_percent_bands(
    service: Service, page: Page
) -> None:
    job = service.submit(
        {
            "name": "bands in the browser",
            "dataset": {"name": "digits"},
            "model": {"preset": "mlp", "hidden_units": [16]},
            "optimizers": ["sgd", "adam"],
            "seeds": [0, 1, 2],
            "epochs": 3,
            "batch_size": 128,
        }
    )
    assert service.wait(job["id"])["status"] == "succeeded"
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/{job['id']}")
    bands = page.locator("#bands")
    expect(bands).to_have_attribute("data-series", "6")  # per arm: the mean and its bounds
    expect(bands).to_contain_text("mean over seeds, 95% band")
    assert page.evaluate("() => document.querySelector('#bands').uplot.bands.length") == 2
    comparison = service.http.get(f"/jobs/{job['id']}/comparison").json()
    first = comparison["ranking"][0]
    drawn = page.evaluate(
        "(label) => { const u = document.querySelector('#bands').uplot;"
        " const i = u.series.findIndex(s => s.label === label + ' mean'); return u.data[i]; }",
        first["label"],
    )
    assert drawn == [p["mean"] for p in first["curve"]]
    expect(page.locator("#comparison-table")).to_contain_text("95% CI")


def test_a_history_of_100000_points_a_run_draws(service: Service, page: Page) -> None:
    """The chart code itself, on more points than a call's arguments may hold (the old
    Math.min(...values) threw past about 100,000)."""
    sign_in(page, service)
    drawn = page.evaluate(
        """() => {
          const points = (k) => Array.from({ length: 100000 }, (_, i) => [i, 1 / (i + k)]);
          const chart = new Chart("loss", { xLabel: "step", logY: true });
          document.querySelector("main").append(chart.box);
          chart.update([{ label: "a", color: "#1f77b4", points: points(1) },
                        { label: "b", color: "#ff7f0e", points: points(2) }]);
          return [chart.box.dataset.points, chart.plot.data[0].length,
                  chart.box.querySelectorAll("canvas").length];
        }"""
    )
    assert drawn == ["100000", 100000, 1]


def test_cancel_from_the_job_page(service: Service, page: Page) -> None:
    # The most epochs a job may have: it is still training when the button is pressed.
    job = service.submit({"optimizers": ["sgd"], "epochs": 1000, "name": "to cancel"})
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/{job['id']}")
    page.wait_for_function(f"{POINTS} >= 2", timeout=60_000)
    page.click("#cancel")
    expect(page.locator("#job-status")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#runs")).to_contain_text("cancelled while running")


def test_the_form_picks_an_uploaded_dataset_and_model(
    service: Service, page: Page, tmp_path: pytest.TempPathFactory
) -> None:
    import io

    import keras
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.normal(size=(150, 5)).astype("float32")
    buffer = io.BytesIO()
    np.savez(buffer, x_train=x, y_train=(x[:, 1] > 0).astype("int64"))
    dataset = service.http.post("/datasets", files={"file": ("browser.npz", buffer.getvalue())})
    assert dataset.status_code in (200, 201), dataset.text
    path = f"{tmp_path}/browser.keras"
    keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]).save(path)
    with open(path, "rb") as f:
        model = service.http.post("/models", files={"file": ("browser.keras", f.read())})
    assert model.status_code in (200, 201), model.text

    sign_in(page, service)
    page.click("#nav-new")
    page.select_option("#dataset", f"id:{dataset.json()['id']}")
    page.select_option("#model", model.json()["id"])
    page.select_option("#weights", "reinitialize")
    page.fill("#name", "uploads from the browser")
    page.fill("#epochs", "2")
    page.click("#submit")
    page.wait_for_url(re.compile(r"#/jobs/[0-9a-f-]+$"))
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=300_000)
    table = page.locator("#comparison-table")
    expect(table).to_contain_text("test_accuracy at budget (held out)")
    job_id = page.url.rsplit("/", 1)[1]
    spec = service.http.get(f"/jobs/{job_id}").json()["spec"]
    assert spec["dataset"]["id"] == dataset.json()["id"]
    assert spec["model"] == {"id": model.json()["id"], "weights": "reinitialize"}


def test_a_tuned_comparison_shows_its_trials_budget_curves_and_final_runs(
    service: Service, page: Page
) -> None:
    job = service.submit(
        {
            "name": "tuned in the browser",
            "dataset": {"name": "digits"},
            "model": {"preset": "mlp", "hidden_units": [16]},
            "optimizers": [
                {"name": "sgd", "search": {"learning_rate": {"log_uniform": [1e-2, 1.0]}}},
                {"name": "adam", "search": {"learning_rate": {"log_uniform": [1e-3, 1e-1]}}},
            ],
            "tuning": {"trials": 2, "final_seeds": [1, 2], "prune": {"rungs": [1], "keep": 0.5}},
            "epochs": 2,
            "batch_size": 128,
        }
    )
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/{job['id']}")
    expect(page.locator("#job-status")).to_have_text("succeeded", timeout=300_000)
    # the final seeds' runs, added while the job ran, are in the runs table with their phase
    expect(page.locator("#runs tr")).to_have_count(1 + 4 + 4, timeout=60_000)
    expect(page.locator("#runs")).to_contain_text("pruned")
    expect(page.locator("table.trials")).to_have_count(2)
    expect(page.locator("table.trials tr.chosen")).to_have_count(2)
    expect(page.locator("#comparison-table")).to_contain_text("(verdict)")
    for view in ("budget", "sensitivity"):
        image = page.locator(f'img.view[data-view="{view}"]')
        page.wait_for_function(
            f"() => document.querySelector('img.view[data-view={view}]').naturalWidth > 0"
        )
        expect(image).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "dashboard-tuning.png"), full_page=True)


def test_a_range_test_and_a_score_across_ticked_jobs(service: Service, page: Page) -> None:
    """A range test shows its loss against learning rate; two ended jobs ticked on the list
    are scored as workloads, with the table, each workload's times and the profiles."""
    tested = service.submit(
        {
            "name": "range in the browser",
            "lr_range": {"min": 1e-4, "max": 10, "steps": 20},
            "optimizers": ["sgd", "adam"],
        }
    )
    common = {"optimizers": ["sgd", "adam"], "epochs": 1, "batch_size": 128}
    jobs = [
        service.submit({"name": f"workload {n}", "dataset": dataset} | common)
        for n, dataset in enumerate(
            [{"name": "digits"}, {"name": "synthetic", "samples": 400, "features": 6}], start=1
        )
    ]
    for job in (tested, *jobs):
        assert service.wait(job["id"])["status"] == "succeeded"
    sign_in(page, service)
    page.goto(f"{service.url}/#/jobs/{tested['id']}")
    expect(page.locator("#comparison-table")).to_contain_text("sgd")
    page.wait_for_function("() => document.querySelector('#picture').naturalWidth > 0")

    page.goto(f"{service.url}/#/")
    for job in jobs:
        page.locator(f'input.pick[data-job="{job["id"]}"]').check()
    page.fill("#score-baseline", "adam")
    page.select_option("#score-time", "epochs")
    page.click("#score")
    expect(page.locator("h2")).to_have_text("Scores across workloads")
    expect(page.locator("#comparison-table")).to_contain_text("adam")
    expect(page.locator("#workloads tr")).to_have_count(1 + 2)
    page.wait_for_function("() => document.querySelector('#profiles').naturalWidth > 0")
    page.screenshot(path=str(ARTIFACTS / "dashboard-scores.png"), full_page=True)
