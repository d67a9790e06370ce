"""The report page: self-contained, complete, and rendered by a real headless browser."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import pytest
from click.testing import CliRunner

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"]
# Appended to a copy of the page: after load, the title says how many images decoded.
IMAGE_PROBE = ("<script>window.addEventListener('load', () => { const images = [...document.images]; "
               "document.title = 'images ' + images.filter(i => i.complete && i.naturalWidth > 0).length "
               "+ '/' + images.length; });</script>")


@pytest.mark.slow
def test_report_is_self_contained_and_says_what_it_found(demo_dir):
    page = (demo_dir / "report.html").read_text()
    assert not re.search(r"""src=["'](?!data:)|<link""", page), "the page must not load anything"
    links = re.findall(r'<a href="([^"]+)"', page)  # the data files behind it, beside it in the folder
    assert {"merge/merge.csv", "merge/samples.jsonl", "map/map.csv", "destruction/destruction.csv", "freeze/compare.csv"} <= set(links)
    for link in links:
        assert (demo_dir / link).is_file(), link
    assert "http://" not in page and "https://" not in page
    for title in ("The pair", "Delta", "Merge", "Map", "Destruction", "Freeze"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("<b>Finding.</b>") == 5 and page.count('src="data:image/png;base64,') >= 8
    markdown = (demo_dir / "report.md").read_text()
    assert markdown.count("**Finding.**") == 5
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (demo_dir / link).is_file()


@pytest.mark.slow
def test_the_conclusions_sfn_demo_ends_with_are_the_pages_verdicts(demo_dir):
    from sfn.report import conclusions

    found = conclusions(demo_dir)
    assert [title for title, _ in found] == ["Delta", "Merge", "Map", "Destruction", "Freeze"]
    page = (demo_dir / "report.html").read_text()
    for _, supports in found:
        assert supports and f"<b>Supports.</b> {html.escape(supports)}." in page


@pytest.mark.slow
def test_report_command_rewrites_the_page(demo_dir):
    from sfn.report.cli import report_command

    (demo_dir / "report.html").unlink()
    result = CliRunner().invoke(report_command, [str(demo_dir)])
    assert result.exit_code == 0, result.output
    assert (demo_dir / "report.html").is_file()


def test_report_of_a_folder_without_a_demo_says_so(tmp_path):
    from sfn.report.cli import report_command

    result = CliRunner().invoke(report_command, [str(tmp_path)])
    assert result.exit_code == 2 and "sfn demo" in result.output


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium) to render the page")
def test_report_renders_in_headless_chromium_with_every_image(demo_dir, tmp_path):
    probe = tmp_path / "probe.html"
    probe.write_text((demo_dir / "report.html").read_text().replace("</body>", IMAGE_PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000"]
        dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], check=False, capture_output=True, text=True, timeout=120)
        shot = tmp_path / "report.png"
        subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1200,2400", (demo_dir / "report.html").as_uri()],
                       check=False, capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>images (\d+)/(\d+)</title>", dom.stdout)
    assert title, dom.stderr[-2000:]
    assert int(title.group(1)) == int(title.group(2)) >= 6
    assert shot.is_file() and shot.stat().st_size > 20_000  # a rendered page, not a blank one


class PageReader(HTMLParser):
    """Per <h2> section of a rendered page: its finding sentence and its tables (header row, rows)."""

    def __init__(self):
        super().__init__()
        self.sections: dict[str, dict] = {}
        self._section: dict | None = None
        self._text: list[str] | None = None
        self._row: list[str] | None = None
        self._in_verdict = False
        self._capture = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "h2":
            self._capture, self._text = "title", []
        elif tag == "div" and attrs.get("class") == "verdict":
            self._in_verdict = True
        elif tag == "p" and self._in_verdict and self._section is not None and "finding" not in self._section:
            self._capture, self._text = "finding", []
        elif tag == "table" and self._section is not None:
            self._section["tables"].append([])
        elif tag == "tr" and self._section is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._capture, self._text = "cell", []

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        text = "".join(self._text or []).strip()
        if tag == "h2" and self._capture == "title":
            self._section = self.sections.setdefault(text, {"tables": []})
        elif tag == "p" and self._capture == "finding":
            self._section["finding"] = text.removeprefix("Finding.").strip()
        elif tag in ("td", "th") and self._capture == "cell":
            self._row.append(text)
        elif tag == "tr" and self._row is not None:
            self._section["tables"][-1].append(self._row)
            self._row = None
        elif tag == "div":
            self._in_verdict = False
        if tag in ("h2", "p", "td", "th"):
            self._capture, self._text = None, None


# After load: every image's natural and shown width, as JSON in an element the DOM dump carries.
SIZE_PROBE = ("<script>window.addEventListener('load', () => { const probe = document.createElement('pre'); "
              "probe.id = 'sizes'; probe.textContent = JSON.stringify([...document.images].map(i => "
              "({alt: i.alt, natural: i.naturalWidth, shown: i.getBoundingClientRect().width}))); "
              "document.body.appendChild(probe); });</script>")
SMALLEST_READABLE_PX = 9.0


def rendered_page(demo_dir, tmp_path) -> str:
    probe = tmp_path / "probe.html"
    probe.write_text((demo_dir / "report.html").read_text().replace("</body>", SIZE_PROBE + "</body>"))
    with tempfile.TemporaryDirectory() as profile:
        flags = [*CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--window-size=1200,2400"]
        dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", probe.as_uri()], check=False, capture_output=True, text=True,
                             timeout=180)
    assert '<pre id="sizes">' in dom.stdout, dom.stderr[-2000:]
    return dom.stdout


def table_rows(section: dict, first_header: str) -> dict[str, dict[str, str]]:
    """The section's table whose header starts with `first_header`, as {first cell: {header: cell}}."""
    table = next(t for t in section["tables"] if t and t[0][0] == first_header)
    return {row[0]: dict(zip(table[0], row)) for row in table[1:]}


def percent(cell: str) -> float:
    return float(cell.split("%")[0])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium) to render the page")
def test_figures_render_with_readable_text_and_the_findings_agree_with_their_tables(demo_dir, tmp_path):
    import json

    from demo.small_demo import FONTS_FILE

    from sfn.report import FIGURES_DIR
    from sfn.report.load import load_demo
    from sfn.report.sections import build_sections

    dom = rendered_page(demo_dir, tmp_path)
    sizes = json.loads(html.unescape(re.search(r'<pre id="sizes">(.*?)</pre>', dom, re.S).group(1)))
    fonts = json.loads((demo_dir / FONTS_FILE).read_text())
    files = {caption: str(path.resolve().relative_to(demo_dir.resolve()))
             for section in build_sections(load_demo(demo_dir), demo_dir / FIGURES_DIR) for caption, path in section.figures}
    assert len(sizes) == len(files) >= 6
    for image in sizes:
        font = fonts[files[image["alt"]]]
        # A font of P points in a figure saved at D dpi is P*D/72 image pixels; the page scales them by shown/natural.
        rendered = font["smallest_pt"] * font["dpi"] / 72 * image["shown"] / image["natural"]
        assert rendered >= SMALLEST_READABLE_PX, f"{image['alt']}: smallest text {rendered:.1f} px on the page"

    page = PageReader()
    page.feed(dom)
    delta = page.sections["Delta"]
    found = re.search(r"(\S+) has the largest relative change in (\d+) of (\d+) layers, and its histogram of element-wise "
                      r"change is bimodal in (\d+) of \d+ layers; its mean relative change is ([\d.]+)x that of the next "
                      r"layer kind, ([^\s;.]+)", delta["finding"])
    assert found, delta["finding"]
    kind, first, layers, bimodal, ratio, runner_up = found.groups()
    ranking = table_rows(delta, "rank")
    by_kind = {row["kind"]: row for row in ranking.values()}
    assert by_kind[kind]["first in layers"] == f"{first}/{layers}" and by_kind[kind]["bimodal layers"] == f"{bimodal}/{layers}"
    table_ratio = float(by_kind[kind]["mean relative change"]) / float(by_kind[runner_up]["mean relative change"])
    assert float(ratio) == pytest.approx(table_ratio, abs=0.011)

    merge = page.sections["Merge"]
    accuracy = {variant: percent(row["accuracy (95% CI)"]) for variant, row in table_rows(merge, "variant").items()}
    said = dict(re.findall(r"(B \+ R's [^ ]+) (\d+)%", merge["finding"]))
    said.update(zip(("B", "R"), re.search(r"B answers (\d+)% correctly and R (\d+)%", merge["finding"]).groups()))
    assert set(said) == set(accuracy)
    for variant, value in said.items():
        assert abs(float(value) - accuracy[variant]) <= 0.5 + 1e-9, variant

    freeze = page.sections["Freeze"]
    rows = table_rows(freeze, "preset")
    claims = re.findall(r"(\S+) \((\d+)% of parameters\) held-out loss ([\d.]+), accuracy (\d+)%", freeze["finding"])
    assert {preset for preset, *_ in claims} == set(rows)
    for preset, share, loss, accuracy_said in claims:
        row = rows[preset]
        assert abs(float(share) - percent(row["share"])) <= 0.5 + 1e-9 and row["held-out loss"] == loss
        assert abs(float(accuracy_said) - percent(row["held-out accuracy"])) <= 0.5 + 1e-9

    destruction = page.sections["Destruction"]
    found = re.search(r"with layers \S+ destroyed \(zero and reinit\), outputs stay fluent and on topic \(III/IV\) for "
                      r"(.+?); they fall to I/II for (.+?); answers stay correct \(IV\) for (.+?)(?: \(undamaged|$)",
                      destruction["finding"])
    assert found, destruction["finding"]
    said_fluent, said_broken, said_correct = ([] if part == "no kind" else part.split(", ") for part in found.groups())
    # The table's level counts per kind and method; a kind is fluent (correct) when every method keeps half its
    # outputs at III/IV (IV): the finding must name exactly those kinds.
    fluent, correct = {}, {}
    for row in destruction["tables"][0][1:]:
        kind, counts = row[0], dict(cell.split(":") for cell in row[3].split())
        total = sum(map(int, counts.values()))
        fluent[kind] = min(fluent.get(kind, 1.0), (int(counts.get("III", 0)) + int(counts.get("IV", 0))) / total)
        correct[kind] = min(correct.get(kind, 1.0), int(counts.get("IV", 0)) / total)
    assert said_fluent == [kind for kind, share in fluent.items() if share >= 0.5]
    assert said_broken == [kind for kind, share in fluent.items() if share < 0.5]
    assert said_correct == [kind for kind, share in correct.items() if share >= 0.5]


def test_the_layout_names_the_files_the_experiments_write() -> None:
    # The demo stages write into LAYOUT's folders with the experiments' own file names.
    from sfn.demo.destruction_stage import TABLE_FILE as DESTRUCTION_FILE
    from sfn.experiments.freeze_compare import COMPARE_CSV
    from sfn.experiments.merge_table import SAMPLES_FILE, TABLE_FILE
    from sfn.report.layout import LAYOUT

    assert LAYOUT.merge_table == f"{LAYOUT.merge_dir}/{TABLE_FILE}"
    assert LAYOUT.merge_samples == f"{LAYOUT.merge_dir}/{SAMPLES_FILE}"
    assert LAYOUT.destruction_table == f"{LAYOUT.destruction_dir}/{DESTRUCTION_FILE}"
    assert LAYOUT.freeze_table == f"{LAYOUT.freeze_dir}/{COMPARE_CSV}"


def test_a_map_of_two_probes_is_reported_on_the_probe_the_index_names(demo_dir, tmp_path):
    """`sfn map --probe A --probe B` scores every cell on both; the report's Map section and finding read
    the probe of the folder's index, not the best cell of any probe."""
    import json

    import pandas as pd

    from sfn.report import write_report

    folder = tmp_path / "demo"
    shutil.copytree(demo_dir, folder)
    table = pd.read_csv(folder / "map" / "map.csv", keep_default_na=False, na_values=[""])
    other = table.assign(probe="conversation")
    planted = (other["mode"] == "transplant") & (other["kind"] == "gate") & (other["layers"] != "all")
    other.loc[planted, "recovered_share"] = 0.99  # the best cell of all, on the other probe
    pd.concat([table, other]).to_csv(folder / "map" / "map.csv", index=False)
    index = json.loads((folder / "demo.json").read_text())
    probe = index["map"]["probe"].rsplit("/", 1)[-1].removesuffix(".jsonl")
    best = table[(table["mode"] == "transplant") & (table["layers"] != "all")].sort_values(
        "recovered_share", ascending=False, kind="stable").iloc[0]
    write_report(folder)
    finding = next(line for line in (folder / "report.md").read_text().splitlines()
                   if line.startswith("> **Finding.** transplanting"))
    assert probe == "probe" and "99%" not in finding
    assert f"transplanting R's {best['kind']} in layers {best['layers']} alone" in finding
