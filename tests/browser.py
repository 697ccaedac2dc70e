"""Pages checked in a real browser: Debian's headless Chromium loads a page, a probe script records what rendered
(images decoded, metric cells, errors), and `--dump-dom` hands the DOM back."""

import subprocess
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")

PROBE_SCRIPT = """<script>
window.addEventListener("load", () => {
  for (const img of document.images) {
    img.setAttribute("data-natural-width", img.naturalWidth);
    img.setAttribute("data-natural-height", img.naturalHeight);
  }
  document.body.setAttribute("data-probe", "done");
});
</script>"""
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--virtual-time-budget=10000",  # let the load event and the probe run before the dump
]


class RenderedPage(HTMLParser):
    """Collects <img> attributes, data-metric cells (with their text) and the probe flag."""

    def __init__(self):
        super().__init__()
        self.images: list[dict] = []
        self.metric_cells: list[dict] = []
        self.probe_done = False
        self._open_cell: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "img":
            self.images.append(attributes)
        elif tag == "body":
            self.probe_done = attributes.get("data-probe") == "done"
        elif tag == "td" and "data-metric-path" in attributes:
            self._open_cell = {**attributes, "text": ""}

    def handle_data(self, data):
        if self._open_cell is not None:
            self._open_cell["text"] += data

    def handle_endtag(self, tag):
        if tag == "td" and self._open_cell is not None:
            self.metric_cells.append(self._open_cell)
            self._open_cell = None


def render_in_chromium(page: Path, workdir: Path) -> RenderedPage:
    probed = workdir / "probed.html"
    probed.write_text(page.read_text().replace("</body>", PROBE_SCRIPT + "</body>"))
    command = [str(CHROMIUM), *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'profile'}", "--dump-dom", probed.as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
    rendered = RenderedPage()
    rendered.feed(completed.stdout)
    return rendered
