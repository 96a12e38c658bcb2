"""The bytes clients get for a page: each format, plain and gzipped, with strong ETags."""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from typing import Callable

from .. import simple


@dataclass(frozen=True)
class Representation:
    body: bytes
    etag: str


class RenderedPage:
    """The bytes clients get for one page: each format, plain and gzipped, with strong ETags.

    Built once per page version, so a warm request is a dictionary look-up.
    """

    def __init__(self, render: Callable[[str], bytes]) -> None:
        self._render = render
        self._forms: dict[tuple[str, bool], Representation] = {}

    def ready(self, fmt: str, gzipped: bool) -> Representation | None:
        """The form if it is built already (no work), else None."""
        return self._forms.get((fmt, gzipped))

    def get(self, fmt: str, gzipped: bool) -> Representation:
        """The form, built now if need be (for a big page: call it in a thread)."""
        key = (fmt, gzipped)
        form = self._forms.get(key)
        if form is None:
            if gzipped:
                plain = self.get(fmt, False)
                body = gzip.compress(plain.body, compresslevel=6, mtime=0)
                form = Representation(body, plain.etag[:-1] + '-gzip"')
            else:
                body = self._render(fmt)
                digest = hashlib.blake2b(body, digest_size=16).hexdigest()
                form = Representation(body, f'"{fmt}-{digest}"')
            self._forms[key] = form
        return form


def render_page(
    page: simple.ProjectPage,
    file_url: simple.FileURL,
    decorate: Callable[[simple.FileEntry], simple.FileEntry] | None = None,
) -> RenderedPage:
    """A page's forms; each entry passed through ``decorate`` first (when a form is built)."""

    def render(fmt: str) -> bytes:
        shown = page if decorate is None else page.with_files(map(decorate, page.files))
        if fmt == "json":
            return simple.render_project_json(shown, file_url)
        return simple.render_project_html(shown, file_url)

    return RenderedPage(render)
