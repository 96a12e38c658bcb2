"""Content negotiation as PEP 691 says: which format a client gets, and gzip or not."""

from __future__ import annotations

JSON_V1 = "application/vnd.pypi.simple.v1+json"
HTML_V1 = "application/vnd.pypi.simple.v1+html"
TEXT_HTML = "text/html"


def parse_qualities(accept: str) -> list[tuple[str, float]]:
    """``Accept``-style lists (also ``Accept-Encoding``): each item, lower-cased, with its q."""
    ranges = []
    for part in accept.split(","):
        pieces = part.strip().split(";")
        media = pieces[0].strip().lower()
        if not media:
            continue
        quality = 1.0
        for param in pieces[1:]:
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        ranges.append((media, quality))
    return ranges


def accepts_gzip(accept_encoding: str) -> bool:
    qualities = dict(parse_qualities(accept_encoding))
    return qualities.get("gzip", qualities.get("*", 0.0)) > 0


# What we can answer with: media type -> (format, content type we answer with), in our
# order of preference when a client ranks two the same.
_OFFERS = {
    JSON_V1: ("json", JSON_V1),
    "application/vnd.pypi.simple.latest+json": ("json", JSON_V1),
    HTML_V1: ("html", HTML_V1),
    "application/vnd.pypi.simple.latest+html": ("html", HTML_V1),
    TEXT_HTML: ("html", TEXT_HTML),
}
_WILDCARDS = {
    "*/*": ("html", TEXT_HTML),
    "text/*": ("html", TEXT_HTML),
    "application/*": ("json", JSON_V1),
}


def negotiate(accept: str | None, format_param: str | None = None) -> tuple[str, str] | None:
    """Pick ``(format, content_type)`` for a request, or ``None`` if nothing is acceptable.

    ``format`` is ``"json"`` or ``"html"``. ``?format=`` wins over ``Accept`` as on PyPI;
    no ``Accept`` (or ``*/*``) gets ``text/html``, as PEP 691 recommends for old clients.
    """
    if format_param:
        accept = format_param
    if not accept:
        return ("html", TEXT_HTML)
    ranked = []
    order = list(_OFFERS)
    for media, quality in parse_qualities(accept):
        if quality <= 0:
            continue
        if media in _OFFERS:
            ranked.append((quality, 1, -order.index(media), _OFFERS[media]))
        elif media in _WILDCARDS:
            ranked.append((quality, 0, 0, _WILDCARDS[media]))
    return max(ranked)[3] if ranked else None
