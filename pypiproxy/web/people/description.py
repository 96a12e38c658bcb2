"""A package's description as safe markup: rendered by readme_renderer, rebuilt as template tags.

readme_renderer (what the public index uses) renders Markdown and reST and cleans the HTML.
We do not paste that HTML into our pages: it is parsed again here and rebuilt from an allow
list of tags and attributes as ``twisted.web.template`` tags, whose flattener escapes every
text and attribute. So a package can never put a tag, an attribute or a script of its own
choosing into a page, whatever readme_renderer lets through.
"""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import readme_renderer.markdown
import readme_renderer.rst
from twisted.web.template import Tag, tags

# Tags a description keeps; any other is dropped and its text kept (DROPPED: text too).
ALLOWED = frozenset(
    "a abbr b blockquote br caption code dd del details div dl dt em h1 h2 h3 h4 h5 h6 hr i "
    "ins kbd li ol p pre q s samp small span strong sub summary sup table tbody td tfoot th "
    "thead tr tt u ul var".split()
)
DROPPED = frozenset("script style template iframe object embed noscript svg math head title textarea".split())
VOID = frozenset("br hr img wbr".split())
ATTRIBUTES = {"a": {"href", "title"}, "abbr": {"title"}, "td": {"colspan", "rowspan", "align"},
              "th": {"colspan", "rowspan", "align"}, "ol": {"start"}}
# Links may lead to the web or to mail, never to script or data.
SCHEMES = frozenset({"http", "https", "mailto"})


def description_tag(text: str, content_type: str | None) -> Tag:
    """The description as a ``div.description``: Markdown, reST, or plain text as the
    package's Description-Content-Type says (reST when it says nothing, as on the public
    index; text when it does not render). Blocking: docutils is slow on long texts."""
    kind = (content_type or "text/x-rst").split(";")[0].strip().lower()
    html = None
    if kind == "text/markdown":
        html = readme_renderer.markdown.render(text)
    elif kind in ("text/x-rst", "text/rst"):
        html = readme_renderer.rst.render(text)
    if html is None:
        return tags.div(tags.pre(text), class_="description text")
    builder = _Builder()
    builder.feed(html)
    builder.close()
    return tags.div(*builder.root.children, class_="description")


def safe_href(url: str) -> str | None:
    """The URL if a page of ours may link to it (http, https, mailto), else None."""
    url = url.strip()
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return None
    return url if scheme in SCHEMES else None


class _Builder(HTMLParser):
    """Cleaned HTML -> allowed tags; text stays text (the flattener escapes it)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = tags.div()
        self._stack: list[tuple[str, Tag]] = [("", self.root)]
        self._dropping = 0  # inside a DROPPED tag: nothing of it is kept

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._dropping or tag in DROPPED:
            if tag not in VOID:
                self._dropping += 1  # counts open tags inside, so the right end tag ends it
            return
        parent = self._stack[-1][1]
        if tag == "img":
            alt = dict(attrs).get("alt")
            if alt:
                # Images come from elsewhere, which our pages never load: their alt text is kept.
                parent(f"[{alt}]")
            return
        if tag not in ALLOWED:
            return  # unwrapped: its text lands in the parent
        kept = {}
        for name, value in attrs:
            if value is None or name not in ATTRIBUTES.get(tag, ()):
                continue
            if name == "href":
                value = safe_href(value)
                if value is None:
                    continue
            kept[name] = value
        if tag == "a":
            # A link is one only to where links may lead; an anchor or a refused link is its words.
            tag = "a" if "href" in kept else "span"
            if "href" in kept:
                kept["rel"] = "nofollow noopener noreferrer"
        element = Tag(tag, attributes=kept)
        parent(element)
        if tag not in VOID:
            self._stack.append((tag, element))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._dropping or tag in DROPPED:
            return  # ``<x/>`` opens nothing
        depth = len(self._stack)
        self.handle_starttag(tag, attrs)
        del self._stack[depth:]

    def handle_endtag(self, tag: str) -> None:
        if self._dropping:
            self._dropping -= 1
            return
        if tag == "a" and self._stack[-1][0] == "span":
            tag = "span"  # the end of a link that lost its href
        if tag not in ALLOWED:
            return
        # Close up to the matching open tag, if there is one (badly nested HTML).
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth][0] == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self._stack[-1][1](data)
