"""Guidelines Markdown -> safe HTML: everything is escaped first, then a small subset is turned into tags.

Headings (#..###), paragraphs, "- " / "* " lists, **bold**, *italic* and `code`. No links, images or raw HTML: a
guideline file cannot inject markup or script into the page.
"""

from __future__ import annotations

import html
import re

INLINE = [(re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
          (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
          (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>")]
HEADING = re.compile(r"^(#{1,3})\s+(.*)$")
BULLET = re.compile(r"^\s*[-*]\s+(.*)$")


def inline(text: str) -> str:
    """Escaped `text` with bold, italic and code spans."""
    text = html.escape(text, quote=True)
    for pattern, replacement in INLINE:
        text = pattern.sub(replacement, text)
    return text


def render_markdown(source: str) -> str:
    """HTML for `source`, block by block (blocks are separated by blank lines)."""
    blocks, paragraph, bullets = [], [], []

    def flush() -> None:
        if paragraph:
            blocks.append(f"<p>{inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if bullets:
            blocks.append("<ul>" + "".join(f"<li>{inline(b)}</li>" for b in bullets) + "</ul>")
            bullets.clear()

    for line in source.splitlines():
        heading, bullet = HEADING.match(line), BULLET.match(line)
        if not line.strip():
            flush()
        elif heading:
            flush()
            level = len(heading.group(1))
            blocks.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
        elif bullet:
            if paragraph:
                flush()
            bullets.append(bullet.group(1))
        elif bullets and line.startswith("  "):
            bullets[-1] += " " + line.strip()
        else:
            if bullets:
                flush()
            paragraph.append(line.strip())
    flush()
    return "\n".join(blocks)
