"""The search page in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``
through selenium), over a sample index the real job built, behind a service key.

Screenshots of each step are saved under the test's ``tmp_path``. Without the browser the
test is skipped, saying how to install it (``.ci/run`` does, where apt-get works).
"""

from __future__ import annotations

import shutil
import urllib.parse
from pathlib import Path

import httpx
import pytest

from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.run import running_service
from pipeline.index_job import IndexJobConfig, run_index_job
from pipeline.sample_corpus import write_sample

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
HOW = (
    "the search page's browser test needs Debian's chromium and chromium-driver and "
    "selenium: apt-get install -y chromium chromium-driver && pip install selenium"
)
KEY = "page-key-0123"


@pytest.fixture(scope="module")
def sample_index(tmp_path_factory):
    root = tmp_path_factory.mktemp("page")
    corpus = write_sample(root / "corpus")
    run_index_job(IndexJobConfig(inputs=(str(corpus),), output=str(root / "sample-index")))
    return root


@pytest.fixture(scope="module")
def service(sample_index):
    config = ServiceConfig(api_key=KEY, poll_interval=0)
    with running_service([sample_index / "sample-index"], config=config) as svc:
        yield svc


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason=HOW)
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(HOW)
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1100,1300"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, what: str, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: condition(d), message=what)


def hits(driver) -> list[dict]:
    return driver.execute_script(
        "return [...document.querySelectorAll('li.hit')].map(li => ({id: li.dataset.id,"
        " doc: li.dataset.document, modality: li.dataset.modality,"
        " marks: [...li.querySelectorAll('mark')].map(m => m.textContent.toLowerCase()),"
        " thumb: (li.querySelector('img.thumb') || {}).naturalWidth || 0}))"
    )


def first_hit_is(doc: str):
    def check(driver):
        h = hits(driver)
        return bool(h) and h[0]["doc"] == doc and h

    return check


def query_of(driver) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlparse(driver.current_url).query)


def test_the_page_searches_filters_takes_an_image_and_finds_more_like_this(
    browser, service, sample_index, tmp_path
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    shots = tmp_path / "screenshots"
    shots.mkdir()
    d = browser
    d.get(service.url + "/")

    # The service needs a key: the page says so and takes it (kept in sessionStorage).
    wait(d, lambda d: "needs a key" in d.find_element(By.ID, "error").text, "the key prompt")
    d.find_element(By.ID, "api-key").send_keys(KEY)
    d.find_element(By.ID, "save-key").click()
    wait(d, lambda d: d.find_element(By.ID, "error").get_attribute("hidden"), "the key accepted")
    assert d.execute_script("return sessionStorage.getItem('corpusbeam-api-key')") == KEY

    # A query: the expected first hit, the query's words highlighted, the query in the URL.
    box = d.find_element(By.ID, "q")
    box.send_keys("cats purr in the sun", Keys.ENTER)
    top = wait(d, first_hit_is("animals/cats.md"), "animals/cats.md first")[0]
    assert {"cats", "purr", "sun"} & set(top["marks"]), top
    assert query_of(d)["q"] == ["cats purr in the sun"]
    d.save_screenshot(str(shots / "1-query.png"))

    # A filter built from the index's metadata: only images.
    Select(d.find_element(By.ID, "filter-modality")).select_by_value("image")
    d.find_element(By.ID, "go").click()
    wait(
        d,
        lambda d: hits(d) and all(h["modality"] == "image" for h in hits(d)),
        "only image hits",
    )
    assert query_of(d)["f.modality"] == ["image"]
    wait(d, lambda d: all(h["thumb"] > 0 for h in hits(d)), "every image hit's thumbnail shown")
    d.save_screenshot(str(shots / "2-filter.png"))

    # The URL is the search: opened afresh, it shows the same hits.
    shared = d.current_url
    before = [h["id"] for h in hits(d)]
    d.get(shared)
    wait(d, lambda d: [h["id"] for h in hits(d)] == before, "the shared URL's hits")

    # An image uploaded: its own picture comes first.
    Select(d.find_element(By.ID, "filter-modality")).select_by_value("")
    picture = sample_index / "corpus" / "images" / "red-circle.png"
    d.find_element(By.ID, "image").send_keys(str(picture))
    wait(d, first_hit_is("images/red-circle.png"), "the uploaded image first")
    wait(d, lambda d: hits(d)[0]["thumb"] > 0, "its thumbnail")
    d.save_screenshot(str(shots / "3-image.png"))

    # "More like this" on an image hit: a query by its stored thumbnail, in the URL.
    second = hits(d)[1]
    d.find_elements(By.CSS_SELECTOR, "li.hit button.more")[1].click()
    wait(d, first_hit_is(second["doc"]), "the image hit itself first")
    assert query_of(d)["like"] == [second["doc"]]
    d.save_screenshot(str(shots / "4-more-like-image.png"))

    # "More like this" on a text hit: a query by its text.
    box = d.find_element(By.ID, "q")
    box.clear()
    box.send_keys("the moon and mars", Keys.ENTER)
    wait(d, lambda d: len(hits(d)) >= 3 and hits(d)[0]["modality"] == "text", "text hits")
    third = hits(d)[2]
    d.find_elements(By.CSS_SELECTOR, "li.hit button.more")[2].click()
    wait(d, first_hit_is(third["doc"]), "the text hit itself first")
    d.save_screenshot(str(shots / "5-more-like-text.png"))
    assert len(list(shots.glob("*.png"))) == 5


def test_the_page_and_its_files_are_served_from_the_package_and_data_needs_the_key(service):
    with httpx.Client(base_url=service.url, timeout=30) as http:
        page = http.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert "/static/app.js" in page.text and "http" not in page.text.replace(
            'name="viewport"', ""
        ), "no CDN: everything from the service itself"
        assert http.get("/static/app.js").status_code == 200
        assert http.get("/static/nope.js").status_code == 404
        assert http.get("/indexes/sample-index/fields").status_code == 401
        fields = http.get("/indexes/sample-index/fields", headers={"api-key": KEY}).json()
        columns = {c["name"]: c for c in fields["columns"]}
        assert set(columns["modality"]["values"]) == {"text", "image"}
        assert "uri" not in columns and "id" not in columns  # not useful as choices
        assert fields["thumbnails"] is True and fields["lexical"] is True  # hybrid: mode shown
        thumb = "/thumbnails/sample-index"
        auth = {"api-key": KEY}
        assert http.get(thumb, headers=auth).status_code == 400
        assert http.get(thumb, params={"document": "nope.png"}, headers=auth).status_code == 404
        ok = http.get(thumb, params={"document": "images/red-circle.png"}, headers=auth)
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
        assert http.get(thumb, params={"document": "images/red-circle.png"}).status_code == 401


def test_the_page_shows_the_mode_that_answered_groups_and_pages(browser, service, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    d = browser
    d.execute_script("sessionStorage.setItem('corpusbeam-api-key', arguments[0])", KEY)
    d.get(service.url + "/?q=cats+purr+in+the+sun&k=2")
    wait(d, first_hit_is("animals/cats.md"), "the query from the URL answered")

    def answered() -> str:  # read in one step: the element is made again by each answer
        return d.execute_script(
            "const e = document.getElementById('answered-mode'); return e ? e.textContent : ''"
        )

    # No mode chosen: the select says what the service does by default, and it answers so.
    mode = Select(d.find_element(By.ID, "mode"))
    assert mode.first_selected_option.text == "default (hybrid)"
    wait(d, lambda d: answered() == "mode: hybrid", "mode: hybrid shown")
    for h in hits(d):  # the service's highlights: query terms, never stopwords
        assert not {"in", "the"} & set(h["marks"]), h
    # The fusion, when an answer carries it (issue 25's fusion branch adds it), is shown too.
    d.execute_script(
        "showAnswered({mode: 'hybrid', fusion: {method: 'convex',"
        " weights: {dense: 0.3, lexical: 0.7}, tuned: true}})"
    )
    fusion = d.find_element(By.ID, "answered-fusion").text
    assert fusion == "fusion: convex (dense 0.30, lexical 0.70), tuned"
    mode.select_by_value("lexical")
    d.find_element(By.ID, "go").click()
    wait(d, lambda d: answered() == "mode: lexical", "mode: lexical shown")
    assert query_of(d)["mode"] == ["lexical"]
    mode.select_by_value("")
    d.find_element(By.ID, "go").click()
    wait(d, lambda d: answered() == "mode: hybrid", "back to the default")

    # Paging: page 2 holds other hits; previous brings page 1 back.
    page1 = [h["id"] for h in hits(d)]
    assert len(page1) == 2
    d.find_element(By.ID, "next").click()
    wait(d, lambda d: d.find_element(By.ID, "page-no").text == "page 2", "page 2")
    page2 = [h["id"] for h in hits(d)]
    assert len(page2) == 2 and not set(page1) & set(page2)
    d.save_screenshot(str(tmp_path / "page-2.png"))
    d.find_element(By.ID, "prev").click()
    wait(d, lambda d: [h["id"] for h in hits(d)] == page1, "page 1 again")

    # Grouped by document: k documents, each once, with a count of its chunks.
    d.find_element(By.ID, "group").click()
    d.find_element(By.ID, "go").click()
    groups = wait(
        d,
        lambda d: d.execute_script(
            "return [...document.querySelectorAll('li.group')].map(g => "
            "({doc: g.dataset.document, count: Number(g.dataset.count),"
            " hits: [...g.querySelectorAll('li.hit')].map(h => h.dataset.document)}))"
        ),
        "groups shown",
    )
    assert len(groups) == 2 and groups[0]["doc"] != groups[1]["doc"]
    for g in groups:
        assert g["count"] >= len(g["hits"]) >= 1 and set(g["hits"]) == {g["doc"]}
    assert query_of(d)["group"] == ["1"]
    d.find_element(By.ID, "next").click()
    wait(d, lambda d: d.find_element(By.ID, "page-no").text == "page 2", "grouped page 2")
    later = d.execute_script(
        "return [...document.querySelectorAll('li.group')].map(g => g.dataset.document)"
    )
    assert not set(later) & {g["doc"] for g in groups}
    d.save_screenshot(str(tmp_path / "groups-page-2.png"))
