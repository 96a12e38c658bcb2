"""Requirements files as pip reads them (includes, constraints, options, hashes): pure."""

from __future__ import annotations

import hashlib
import re
import shlex
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from packaging.requirements import InvalidRequirement, Requirement

from ...config import redact


class RequirementsError(ValueError):
    """A requirements file warm cannot follow; ``str()`` is the one line to show."""


@dataclass(frozen=True)
class RequirementLine:
    """One requirement as written, and where (``file:line``), for messages."""

    requirement: Requirement
    origin: str
    hashes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Requirements:
    """What a set of requirements files asks for, with the notes about what was ignored."""

    requirements: tuple[RequirementLine, ...] = ()
    constraints: tuple[RequirementLine, ...] = ()
    notes: tuple[str, ...] = ()
    pre: bool = False


# pip's comment rule: "#" at the start of a line or after whitespace.
_COMMENT = re.compile(r"(^|\s+)#.*$")
# Include options, and whether what they include are constraints.
_INCLUDES = MappingProxyType(
    {"-r": False, "--requirement": False, "-c": True, "--constraint": True}
)
_EDITABLE = frozenset({"-e", "--editable"})
_IGNORED_WITH_VALUE = frozenset(
    {
        "-i",
        "--index-url",
        "--extra-index-url",
        "-f",
        "--find-links",
        "--trusted-host",
        "--only-binary",
        "--no-binary",
        "--use-feature",
    }
)
_IGNORED_FLAGS = frozenset({"--no-index", "--prefer-binary", "--require-hashes"})
_SHORT_WITH_VALUE = frozenset({"-r", "-c", "-e", "-i", "-f"})
_LINE_OPTIONS_IGNORED = frozenset(
    {"--config-settings", "-C", "--global-option", "--install-option"}
)
_LOCATION_SUFFIXES = (".whl", ".zip", ".tar.gz", ".tgz", ".tar.bz2", ".tar")


def logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Lines as pip sees them: continuations joined, comments and blanks dropped.

    Each comes with the number of its first physical line, which is what a user looks for.
    """
    pending: list[str] = []
    start = 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.endswith("\\") and not _COMMENT.match(line):
            if not pending:
                start = number
            pending.append(line[:-1])
            continue
        if pending:
            pending.append(line)
            line, number, pending = "".join(pending), start, []
        line = _COMMENT.sub("", line).strip()
        if line:
            yield number, line
    if pending:
        line = _COMMENT.sub("", "".join(pending)).strip()
        if line:
            yield start, line


def parse_requirement(text: str, origin: str) -> RequirementLine:
    """One requirement line (``name[extras] spec ; marker --hash=...``)."""
    # pip's split: the first word that starts with "-" begins the per-line options.
    words = text.split(" ")
    cut = next((i for i, word in enumerate(words) if word.startswith("-")), len(words))
    spec_text, option_text = " ".join(words[:cut]).strip(), " ".join(words[cut:])
    hashes = tuple(_line_options(option_text, origin, text))
    try:
        requirement = Requirement(spec_text)
    except InvalidRequirement as e:
        if _looks_like_location(spec_text):
            raise RequirementsError(
                f"{origin}: URLs, paths and VCS links are not supported, name a project "
                f"instead: {redact(text)}"
            ) from None
        reason = str(e).splitlines()[0] if str(e) else "not a requirement"
        raise RequirementsError(
            f"{origin}: invalid requirement: {redact(text)} ({reason})"
        ) from None
    if requirement.url:
        raise RequirementsError(
            f"{origin}: direct URL requirements are not supported, warm fetches from the "
            f"index: {redact(text)}"
        )
    return RequirementLine(requirement, origin, hashes)


def _looks_like_location(text: str) -> bool:
    return (
        "://" in text
        or "/" in text
        or "\\" in text
        or text.startswith((".", "~", "file:"))
        or text.lower().endswith(_LOCATION_SUFFIXES)
    )


def _split(text: str, origin: str, line: str) -> list[str]:
    """Shell-like words of a requirements line; unbalanced quotes name the line."""
    try:
        return shlex.split(text)
    except ValueError as e:
        raise RequirementsError(f"{origin}: {e}: {redact(line)}") from None


def _line_options(option_text: str, origin: str, line: str) -> Iterator[str]:
    """The ``--hash`` values of a requirement line; other per-line options are refused."""
    tokens = _split(option_text, origin, line)
    index = 0
    while index < len(tokens):
        name, _, value = tokens[index].partition("=")
        index += 1
        if name in ("--hash", *_LINE_OPTIONS_IGNORED) and not value:
            if index >= len(tokens):
                raise RequirementsError(f"{origin}: option {name} needs a value: {redact(line)}")
            value, index = tokens[index], index + 1
        if name == "--hash":
            algorithm, _, digest = value.partition(":")
            if algorithm not in hashlib.algorithms_guaranteed or not re.fullmatch(
                r"[0-9a-fA-F]+", digest
            ):
                raise RequirementsError(
                    f"{origin}: --hash must be ALGORITHM:HEXDIGEST, not {value!r}: {redact(line)}"
                )
            yield f"{algorithm}:{digest.lower()}"
        elif name not in _LINE_OPTIONS_IGNORED:
            raise RequirementsError(
                f"{origin}: unsupported option {name} on a requirement line: {redact(line)}"
            )


class _FileReader:
    """Walks a tree of requirements files; includes are read where they appear."""

    def __init__(self) -> None:
        self.requirements: list[RequirementLine] = []
        self.constraints: list[RequirementLine] = []
        self.notes: list[str] = []
        self.pre = False
        self._reading: list[Path] = []

    def read(self, path: Path, constraint: bool, included_from: str | None = None) -> None:
        try:
            real = path.resolve()
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or str(e)
            where = f"{included_from}: " if included_from else ""
            raise RequirementsError(
                f"{where}cannot read requirements file {str(path)!r}: {reason}"
            ) from None
        if real in self._reading:
            raise RequirementsError(f"{included_from}: {str(path)!r} includes itself")
        self._reading.append(real)
        try:
            for number, line in logical_lines(text):
                origin = f"{path}:{number}"
                if line.startswith("-"):
                    self._options(line, origin, path, constraint)
                else:
                    parsed = parse_requirement(line, origin)
                    (self.constraints if constraint else self.requirements).append(parsed)
        finally:
            self._reading.pop()

    def _options(self, line: str, origin: str, path: Path, constraint: bool) -> None:
        tokens = _split(line, origin, line)
        index = 0
        while index < len(tokens):
            token = tokens[index]
            index += 1
            name, value = token, None
            if token.startswith("--") and "=" in token:
                name, value = token.split("=", 1)
            elif not token.startswith("--") and len(token) > 2 and token[:2] in _SHORT_WITH_VALUE:
                name, value = token[:2], token[2:]
            takes_value = name in _INCLUDES or name in _EDITABLE or name in _IGNORED_WITH_VALUE
            if takes_value and value is None:
                if index >= len(tokens):
                    raise RequirementsError(f"{origin}: option {name} needs a value: {redact(line)}")
                value, index = tokens[index], index + 1
            if name in _EDITABLE:
                raise RequirementsError(
                    f"{origin}: editable requirements are not supported, warm fetches released "
                    f"files from the index: {redact(line)}"
                )
            if name in _INCLUDES:
                assert value is not None
                if "://" in value:
                    raise RequirementsError(
                        f"{origin}: including a file from a URL is not supported: {redact(line)}"
                    )
                included = Path(value).expanduser()
                if not included.is_absolute():
                    included = path.parent / included
                self.read(included, constraint or _INCLUDES[name], origin)
            elif name == "--pre":
                self.pre = True
            elif name in _IGNORED_WITH_VALUE or name in _IGNORED_FLAGS:
                self.notes.append(f"{origin}: ignoring {name} (warm fetches from --index)")
            else:
                raise RequirementsError(f"{origin}: unknown option {name}: {redact(line)}")


def parse_requirements(files: Sequence[Path | str] = (), lines: Sequence[str] = ()) -> Requirements:
    """Read requirements files (and requirements given on the command line)."""
    reader = _FileReader()
    for path in files:
        reader.read(Path(path), constraint=False)
    for text in lines:
        reader.requirements.append(parse_requirement(text.strip(), "command line"))
    return Requirements(
        tuple(reader.requirements), tuple(reader.constraints), tuple(reader.notes), reader.pre
    )
