"""``POST /`` and ``POST /legacy/``: the upload API, its multipart form parsed as it arrives."""

from __future__ import annotations

import io
from pathlib import Path

from multipart import MultipartError, MultipartSegment, PushMultipartParser
from twisted.logger import Logger
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource

from ..private import Account, Audit, Distribution, PrivateStore, Refused, UploadRules, check_distribution
from ..simple import BadFilename, parse_filename
from ..stats import Stats
from .errors import bad_request, error_page
from ..interfaces import ToThread
from .http import render_async

log = Logger()

# All the text fields of an upload together (the long description is the big one).
MAX_FORM_FIELDS = 16 * 1024 * 1024
# The names the upload API uses for digests, and hashlib's for them.
UPLOAD_DIGESTS = {"sha256_digest": "sha256", "md5_digest": "md5", "blake2_256_digest": "blake2_256"}


class FormReceiver:
    """Parses a multipart/form-data body as it arrives: the ``content`` file goes straight
    to a temporary file in the store, the text fields (bounded) into memory."""

    def __init__(self, boundary: str, temporary: Path) -> None:
        self._parser = PushMultipartParser(boundary, max_header_count=16, max_segment_count=1000)
        self.path = temporary
        self.fields: dict[str, list[str]] = {}
        self.filename: str | None = None
        self.error: str | None = None
        self.claimed = False  # by the upload resource, which then cleans up
        self._segment: MultipartSegment | None = None
        self._file: io.BufferedWriter | None = None
        self._chunks: list[bytes] | None = None
        self._field_bytes = 0

    def feed(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            for event in self._parser.parse(data):
                if isinstance(event, MultipartSegment):
                    self._start(event)
                elif event:
                    self._body(event)
                else:
                    self._end()
        except MultipartError as e:
            self._fail(f"malformed multipart/form-data body: {e}")
        except OSError as e:
            self._fail(f"cannot store the upload: {e.strerror}")

    def finish(self) -> None:
        """The body is complete: an unfinished form is an error."""
        if self.error is None:
            try:
                self._parser.close()
            except MultipartError as e:
                self._fail(f"incomplete multipart/form-data body: {e}")

    def discard(self) -> None:
        """Remove the temporary file (harmless once it has been moved into the store)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path.unlink(missing_ok=True)

    def _start(self, segment: MultipartSegment) -> None:
        self._segment = segment
        if segment.filename is None:
            self._chunks = []
        elif segment.name == "content" and self._file is None and self.filename is None:
            self.filename = segment.filename
            self._file = open(self.path, "wb")
        else:
            self._chunks = None  # another file (a signature, attestations): not kept

    def _body(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
        elif self._chunks is not None:
            self._field_bytes += len(data)
            if self._field_bytes > MAX_FORM_FIELDS:
                self._fail(f"the form's text fields are over {MAX_FORM_FIELDS} bytes")
                return
            self._chunks.append(data)

    def _end(self) -> None:
        segment, self._segment = self._segment, None
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._chunks is not None and segment is not None and segment.name:
            value = b"".join(self._chunks).decode(segment.charset or "utf-8", "replace")
            self.fields.setdefault(segment.name, []).append(value)
        self._chunks = None

    def _fail(self, reason: str) -> None:
        self.error = reason
        self.discard()

    def field(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0].strip() if values else None


class Upload(Resource):
    """``POST /`` and ``POST /legacy/``: the upload API of twine, ``uv publish``, flit, poetry."""

    isLeaf = True

    def __init__(
        self, private: PrivateStore, rules: UploadRules, audit: Audit, stats: Stats, to_thread: ToThread
    ) -> None:
        super().__init__()
        self._private = private
        self._rules = rules
        self._audit = audit
        self._stats = stats
        self._to_thread = to_thread

    def render_GET(self, request: IRequest) -> bytes:
        # Also HEAD: Twisted answers HEAD with render_GET.
        reason = "this is the upload API: POST files here with twine upload or uv publish"
        return error_page(405, reason, {"Allow": "POST"}).render(request)

    def render_POST(self, request: IRequest) -> int | bytes:
        form: FormReceiver | None = getattr(request, "form", None)
        if form is None:
            return bad_request("expected a multipart/form-data upload, as twine sends").render(request)
        form.claimed = True
        return render_async(request, self._upload(request, form))

    async def _upload(self, request: IRequest, form: FormReceiver) -> IResource | bytes:
        account: Account | None = getattr(request, "account", None)
        user = account.name if account is not None else None
        try:
            dist = await self._to_thread(check_upload, form)
            # The owner rules need the project's name, which only the form says.
            await self._rules.check(account, dist.project)
            stored = await self._to_thread(self._private.add, form.path, dist, uploaded_by=user)
        except Refused as e:
            await self._audit.record(
                "upload-refused", str(account) if account else None, filename=form.filename or "?",
                code=e.code, reason=e.reason,
            )
            return error_page(e.code, e.reason)
        finally:
            form.discard()
        self._private.forget(stored.project)
        self._stats.incr("uploads")
        await self._audit.record(
            "upload", str(account) if account else None, project=stored.project, filename=stored.filename,
            size=stored.size, sha256=stored.sha256,
        )
        if user is not None and not self._rules.owners.of(stored.project):
            owners = await self._to_thread(self._rules.owners.adopt, stored.project, user)
            if owners == (user,):
                await self._audit.record("owner-add", user, project=stored.project, owner=user, why="first upload")
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return f"OK: {stored.filename} stored\n".encode()


_FILETYPES = {"bdist_wheel": (".whl",), "sdist": (".tar.gz", ".zip")}


def check_upload(form: FormReceiver) -> Distribution:
    """The upload form's own checks, then the ones every file gets (blocking: in a thread)."""
    if form.error is not None:
        raise Refused(form.error)
    action = form.field(":action")
    if action != "file_upload":
        raise Refused(f"unsupported :action {action!r}: only file_upload is" if action else "not an upload: no :action field")
    protocol = form.field("protocol_version")
    if protocol not in (None, "1"):
        raise Refused(f"unsupported protocol_version {protocol!r}")
    if form.filename is None or not form.path.exists():
        raise Refused("no file in the form's 'content' field")
    filename = form.filename
    try:
        parse_filename(filename)
    except BadFilename as e:
        raise Refused(str(e)) from None
    name, version = form.field("name"), form.field("version")
    if not name or not version:
        raise Refused("the form needs the fields 'name' and 'version'")
    filetype = form.field("filetype")
    if filetype is not None:
        suffixes = _FILETYPES.get(filetype)
        if suffixes is None:
            raise Refused(f"unsupported filetype {filetype!r}: only bdist_wheel and sdist are")
        if not filename.endswith(suffixes):
            raise Refused(f"filetype {filetype} does not fit the file name {filename!r}")
    digests = {algorithm: form.field(field) or "" for field, algorithm in UPLOAD_DIGESTS.items()}
    return check_distribution(
        form.path,
        filename,
        name=name,
        version=version,
        digests=digests,
        requires_python=form.field("requires_python"),
    )
