"""The report page: self-contained, complete, and rendered by a real headless browser."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile

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
    assert not re.search(r"""(?:src|href)=["'](?!data:)""", page), "the page must not load anything"
    assert "http://" not in page and "https://" not in page
    for title in ("The pair", "Delta", "Merge", "Destruction", "Freeze"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("<b>Finding.</b>") == 4 and page.count('src="data:image/png;base64,') >= 6
    markdown = (demo_dir / "report.md").read_text()
    assert markdown.count("**Finding.**") == 4
    for link in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown):
        assert (demo_dir / link).is_file()


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
