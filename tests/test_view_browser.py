"""The live page in real headless Chromium (Debian's `chromium` + `chromium-driver`, driven by
selenium; nothing is downloaded): daemon + view + a replayed painted scene.

Checks, in order on one page (and a second one opened late): the page loads; the RGB canvas
changes while the scan runs; an element can be chosen; the page ends with the daemon's own
final canvases; a page opened after the scan shows the same; a click shows that pixel's
recorded spectrum with the mapped elements' lines; a refused scan's reason appears.

`MAXRF_VIEW_SCREENSHOT=docs/view.png pytest tests/test_view_browser.py` also saves the
README's screenshot (quantised to stay small).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("aiohttp", reason="the `view` extra (aiohttp) is not installed")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium (the dev extra) missing")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip("Chromium is not installed (apt-get install chromium chromium-driver; "
                ".ci/run does it in CI)", allow_module_level=True)

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

from edge.replay import connect, replay  # noqa: E402
from edge.watch import request  # noqa: E402
from proto import wire  # noqa: E402
from proto.dataset import open_dataset  # noqa: E402
from tests.edge_support import Daemon  # noqa: E402
from tests.test_view_scene import ViewServer, make_line_bundles, make_painting  # noqa: E402

H, W = 40, 56
FACE = (20, 17)  # an ochre pixel: Fe peaks


def wait(predicate, timeout_s: float = 15.0, what: str = "the page"):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    models = make_line_bundles(root / "models")
    scan = make_painting(root / "painting.h5", H, W)
    d = Daemon(models, root / "rec", log=root / "daemon.log").start()
    v = ViewServer(d, root / "view.log").start()
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never fetch a browser or driver
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1200", "--hide-scrollbars"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts,
                              service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(20)
    try:
        yield d, v, scan, driver
    finally:
        driver.quit()
        v.stop()
        d.stop()


def js(driver, code: str, *args):
    return driver.execute_script(f"return window.__view.{code};", *args)


def daemon_final(d: Daemon) -> dict[str, np.ndarray]:
    """The daemon's canvases once it has closed the scan (replay returns before that)."""
    d.wait(lambda s: s.state == "idle" and s.scan_id == "painting", what="the scan's end")
    reply = request(d.snapshot, wire.SnapshotRequest(), 10.0)
    return {f.topic: np.asarray(f.data) for f in reply.frames}


def shows_final(driver, ref) -> bool:
    if js(driver, "state()")["W"] != W:
        return False
    rgb = np.asarray(js(driver, "rgb()"), np.uint8)
    fe = np.asarray(js(driver, "plane(2)"), np.float32)
    return (rgb.size == H * W * 3 and np.array_equal(rgb.reshape(H, W, 3), ref["rgb"])
            and fe.size == H * W and np.allclose(fe.reshape(H, W), ref["elements"][2],
                                                 rtol=1e-6))


def test_the_page_grows_then_matches_the_daemon(world):
    d, v, scan, driver = world
    driver.get(v.url)
    wait(lambda: "connected" in driver.find_element(By.ID, "link").text, what="the link")
    hashes: list[int] = []
    run = threading.Thread(target=replay, args=(scan, d.ingest),
                           kwargs={"scan_id": "painting", "dwell_s": 0.0025,
                                   "pixels_per_message": 8})
    run.start()
    try:
        wait(lambda: js(driver, "state()")["W"] == W, what="the scan's layout")
        while run.is_alive():
            hashes.append(js(driver, "canvasHash('rgb-view')"))
            time.sleep(0.25)
    finally:
        run.join(30)
    assert len(set(hashes)) >= 3, "the RGB canvas did not change while the scan ran"
    ref = daemon_final(d)
    wait(lambda: shows_final(driver, ref), what="the daemon's final canvases")
    assert js(driver, "canvasHash('rgb-view')") != hashes[0]  # grown since the first look
    assert "2,240 of 2,240 pixels" in driver.find_element(By.ID, "progress-text").text
    assert "completed" in driver.find_element(By.ID, "scan-title").text
    # choose an element: the map, its colour bar and the selection follow
    before = js(driver, "canvasHash('element-view')")
    Select(driver.find_element(By.ID, "element")).select_by_visible_text("Fe")
    wait(lambda: js(driver, "state()")["sel"] == 2, what="Fe selected")
    wait(lambda: js(driver, "canvasHash('element-view')") != before, what="the Fe map")
    fe_zero = js(driver, "canvasHash('element-view')")
    Select(driver.find_element(By.ID, "scaling")).select_by_value("pct")
    wait(lambda: js(driver, "canvasHash('element-view')") != fe_zero, what="percentile scaling")


def test_a_late_page_shows_the_same(world):
    d, v, _, driver = world
    first = driver.current_window_handle
    ref = daemon_final(d)
    a = js(driver, "canvasHash('rgb-view')")
    driver.switch_to.new_window("window")
    try:
        driver.get(v.url)
        wait(lambda: shows_final(driver, ref), what="the late page")
        wait(lambda: js(driver, "canvasHash('rgb-view')") == a, what="the same picture")
    finally:
        driver.close()
        driver.switch_to.window(first)


def test_a_click_shows_the_pixels_spectrum(world):
    *_, scan, driver = world
    # the readout shows the chosen element's value: choose Fe here, not only in the test above
    Select(driver.find_element(By.ID, "element")).select_by_visible_text("Fe")
    wait(lambda: js(driver, "state()")["sel"] == 2, what="Fe selected")
    canvas = driver.find_element(By.ID, "rgb-view")
    x, y = js(driver, "screenOf(arguments[0], arguments[1])", *FACE)
    size = canvas.size
    webdriver.ActionChains(driver).move_to_element_with_offset(
        canvas, int(x - size["width"] / 2), int(y - size["height"] / 2)).click().perform()
    wait(lambda: js(driver, "spectrum()"), what="the spectrum")
    m = js(driver, "spectrum()")
    assert (m["x"], m["y"]) == FACE
    with open_dataset(scan) as ds:
        np.testing.assert_array_equal(m["counts"], ds.counts[FACE[1], FACE[0]])
    assert f"Pixel ({FACE[0]}, {FACE[1]})" in driver.find_element(By.ID, "spectrum-title").text
    assert "Fe Kα 6.40 keV" in driver.find_element(By.ID, "spectrum-lines").text
    assert "Fe" in driver.find_element(By.ID, "readout").text  # the value under the cursor


def test_a_refused_scans_reason_appears(world):
    d, _, _, driver = world
    push = connect(d.ingest)
    try:  # a calibration the models cannot be rebinned from: 0-0.64 keV
        push.send(wire.encode(wire.ScanStart("too-narrow", 8, 8, 64, 0.0, 0.01, 0.01,
                                             50.0, 100.0)))
    finally:
        push.close(2000)
    box = driver.find_element(By.ID, "refusal")
    wait(lambda: box.is_displayed() and "too-narrow" in box.text, what="the refusal")
    assert "refused" in box.text and "keV" in box.text
    shot = os.environ.get("MAXRF_VIEW_SCREENSHOT")
    if shot:
        screenshot(driver, Path(shot))


def screenshot(driver, path: Path) -> None:
    """The README's picture: Fe map, trust overlay on, the face pixel's spectrum, the refusal;
    quantised to 256 colours so the PNG stays small."""
    from PIL import Image

    Select(driver.find_element(By.ID, "scaling")).select_by_value("zero")
    driver.find_element(By.ID, "trust-toggle").click()
    driver.set_window_size(1100, 1240)
    time.sleep(1.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_suffix(".raw.png")
    driver.save_screenshot(str(raw))
    img = Image.open(raw).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    img.save(path, optimize=True)
    raw.unlink()


@contextlib.contextmanager
def stand_in(tmp_path: Path, reply: wire.SnapshotReply):
    """A view on a stand-in daemon (the protocol's two sockets) whose snapshot is `reply`."""
    import types

    import zmq

    from tests.edge_support import free_ports

    ctx = zmq.Context.instance()
    pub, router = ctx.socket(zmq.PUB), ctx.socket(zmq.ROUTER)
    fake = types.SimpleNamespace(**{k: f"tcp://127.0.0.1:{p}" for k, p in
                                    zip(("previews", "snapshot"), free_ports(2), strict=True)})
    pub.bind(fake.previews)
    router.bind(fake.snapshot)
    body = wire.encode(reply)
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            if router.poll(100):
                ident, *_, _ = router.recv_multipart()
                router.send_multipart([ident, b"", body])

    server = threading.Thread(target=answer)
    server.start()
    v = ViewServer(fake, tmp_path / "view.log").start()
    try:
        yield v
    finally:
        v.stop()
        stop.set()
        server.join(5)
        pub.close(0)
        router.close(0)


def test_below_the_detection_limit_is_grey_when_uncertainties_exist(world, tmp_path):
    """A stand-in daemon publishes Fe with an `Fe_sigma` plane: pixels at or under 3 sigma are
    grey (a zero with sigma 0 too), the others coloured, and the legend says why."""
    *_, driver = world
    fe = np.array([[[10, 10, 1, 0], [10, 10, 1, 1]]], np.float32)
    sigma = np.ones_like(fe)
    sigma[0, 0, 3] = 0.0  # (3, 0): a zero with sigma 0, as PyMca's own maps give
    frames = (
        wire.Preview("rgb", "dl", 1, (0, 0, 4, 2), True, ("R", "G", "B"),
                     np.full((2, 4, 3), 128, np.uint8)),
        wire.Preview("elements", "dl", 1, (0, 0, 4, 2), True, ("Fe", "Fe_sigma"),
                     np.concatenate([fe, sigma])),
    )
    reply = wire.SnapshotReply("dl", 1, wire.ScanStart("dl", 4, 2, 16, 0.0, 0.02, 0.1), frames,
                               wire.Status("dl", 1, "scanning"))
    with stand_in(tmp_path, reply) as v:
        driver.get(v.url)
        wait(lambda: js(driver, "state()")["names"] == ["Fe", "Fe_sigma"], what="the planes")
        options = driver.find_elements(By.CSS_SELECTOR, "#element option")
        assert [o.text for o in options] == ["Fe"]  # the uncertainty is not a map of its own
        wait(lambda: driver.find_element(By.ID, "dl-legend").is_displayed(), what="the legend")
        wait(lambda: js(driver, "canvasPixel('element-view', 3, 1)") == [128, 128, 128],
             what="grey below 3 sigma")
        assert js(driver, "canvasPixel('element-view', 0, 0)") != [128, 128, 128]
        assert js(driver, "canvasPixel('element-view', 3, 0)") == [128, 128, 128]  # 0 <= 3 x 0
        assert not driver.find_element(By.ID, "axis").is_displayed()  # the status says none


def test_a_corrected_energy_axis_is_said(world, tmp_path):
    """The daemon's verdict on the stream's energy axis (detail.scan.energy_axis,
    proto/energy_axis.py) is said in words on the page."""
    *_, driver = world
    axis = {"state": "locked", "counts": 52668, "stated": [0.0, 0.01],
            "served": [-0.0013, 0.010015], "anchors_kev": [4.7975, 11.3925],
            "shift_ev": [6.8, 20.8], "residual_drop": 0.21}
    frames = (wire.Preview("rgb", "ax", 1, (0, 0, 4, 2), True, ("R", "G", "B"),
                           np.full((2, 4, 3), 128, np.uint8)),)
    status = wire.Status("ax", 1, "scanning", detail={"scan": {"scan_id": "ax",
                                                               "energy_axis": axis}})
    reply = wire.SnapshotReply("ax", 1, wire.ScanStart("ax", 4, 2, 16, 0.0, 0.02, 0.1), frames,
                               status)
    with stand_in(tmp_path, reply) as v:
        driver.get(v.url)
        box = driver.find_element(By.ID, "axis")
        wait(lambda: box.is_displayed(), what="the energy-axis note")
        assert "corrected" in box.text and "+6.8 eV at 4.80 keV, +20.8 eV at 11.39 keV" in box.text
        assert box.get_attribute("class") == "note"
