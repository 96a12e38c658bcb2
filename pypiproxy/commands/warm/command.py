"""``pypiproxy warm``'s command line: its options, and the run from parsed arguments to exit status."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from ..arguments import add_credentials_option, index_url, index_with_credentials, positive
from ..reactor import run_command
from .choose import constraint_specifiers, top_level_needs
from .client import IndexClient, WarmError
from .reqfile import RequirementsError, parse_requirements
from .report import Reporter, summary_lines
from .targets import Target, normalize_platform
from .warmer import Warmer

DEFAULT_JOBS = 4
DEFAULT_TIMEOUT = 60.0

EPILOG = """\
requirements files
  Read as pip reads them: nested -r/--requirement and -c/--constraint (paths relative
  to the including file), comments, blank lines, backslash continuations, environment
  markers, extras, == pins and ranges, per-line --hash options.
  * Index options (-i/--index-url, --extra-index-url, -f/--find-links, --no-index,
    --trusted-host) and install options (--only-binary, --no-binary, --prefer-binary,
    --require-hashes, --use-feature; per line --config-settings, --global-option) are
    ignored with a note: the files come from --index, filtered by this command's options.
  * --pre in a file allows pre-releases, like --pre here.
  * Editable (-e), URL, path and VCS requirements are errors: warm fetches released
    files from an index, by project name.
  * --hash values are checked for form only; every file is checked against the sha256
    the index gives for it.

choosing versions and files
  Markers are evaluated for this interpreter, with --python-version replacing its Python
  version and each --platform its platform (sys_platform, platform_system,
  platform_machine, os_name); with several --platform a marker counts if it holds for
  any of them. Requires-Python is checked against --python-version (default: this
  interpreter). Each requirement gets the newest non-yanked version that has a file
  for the target; a yanked version only when pinned with == or === (PEP 592).
  Requirements of one project share a version where one fits them all; where none
  does (conflicting dependencies), each gets its own and all of them are fetched.
  Dependencies come from PEP 658 metadata (<file>.metadata), else from a wheel's
  METADATA; a release with only an sdist is warned about and its dependencies are not
  followed (that would need a build).
  All files of each chosen version are fetched: every platform and Python, or with
  --python-version / --platform / --only-binary just those an installer there would
  take (--platform manylinux_2_28_x86_64 also takes manylinux_2_17, manylinux2014 and
  linux_x86_64 wheels; macosx_14_0_arm64 older macOS and universal2 ones).

exit status
  0 everything fetched; 1 some files or requirements failed (listed at the end);
  2 bad usage, a bad requirements file, an unreachable index or an unknown project.
"""


def _python_version(value: str) -> str:
    if not re.fullmatch(r"3\.\d+(\.\d+)?", value.strip()):
        raise argparse.ArgumentTypeError(f"expected a version like 3.12, not {value!r}")
    return value.strip()


def configure(parser: argparse.ArgumentParser) -> None:
    """Add warm's options to its subcommand parser."""
    parser.description = (
        "Fill a proxy's cache ahead of time: resolve requirements against the index and\n"
        "fetch every file of each chosen version through it (checked, then discarded)."
    )
    parser.epilog = EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "requirements",
        nargs="*",
        metavar="REQUIREMENT",
        help="a requirement such as 'flask>=3' (in addition to -r files)",
    )
    parser.add_argument(
        "-r",
        "--requirement",
        dest="files",
        action="append",
        default=[],
        metavar="FILE",
        help="a requirements file; repeatable",
    )
    parser.add_argument(
        "--index",
        required=True,
        type=index_url("--index"),
        metavar="URL",
        help="the Simple API root to warm, e.g. http://host:3141/simple/; "
        "http://user:pass@host/simple/ for basic auth",
    )
    parser.add_argument(
        "--index-ca",
        type=Path,
        metavar="FILE",
        help="PEM bundle to verify the index's TLS with, instead of the system's",
    )
    parser.add_argument(
        "--no-deps", action="store_true", help="fetch only what is named, not dependencies"
    )
    parser.add_argument(
        "--python-version",
        type=_python_version,
        metavar="X.Y",
        help="the Python to warm for (markers, Requires-Python, wheel tags) "
        "[default: this interpreter's for markers and Requires-Python, any for wheels]",
    )
    parser.add_argument(
        "--platform",
        dest="platforms",
        action="append",
        default=[],
        metavar="TAG",
        type=normalize_platform,
        help="a platform tag to warm for (manylinux_2_28_x86_64, macosx_14_0_arm64, "
        "win_amd64); repeatable [default: all]",
    )
    parser.add_argument("--only-binary", action="store_true", help="skip sdists")
    parser.add_argument("--pre", action="store_true", help="allow pre-releases")
    parser.add_argument(
        "-j",
        "--jobs",
        type=positive(int),
        default=DEFAULT_JOBS,
        metavar="N",
        help=f"requests at a time [default: {DEFAULT_JOBS}]",
    )
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="per request: to connect, to answer, and between bytes "
        f"[default: {DEFAULT_TIMEOUT:g}]",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no notes")
    add_credentials_option(parser)


async def execute(reactor: Any, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """The whole command, given a running reactor: returns the exit status."""
    prog = "pypiproxy warm"
    if not args.files and not args.requirements:
        err.write(f"{prog}: error: nothing to warm: give -r FILE or a requirement\n")
        return 2
    try:
        index = index_with_credentials(args.index, args.upstream_credentials)
    except ValueError as e:
        err.write(f"{prog}: error: {e}\n")
        return 2
    target = Target(args.python_version, tuple(args.platforms), args.only_binary)
    try:
        requirements = parse_requirements(args.files, args.requirements)
        environments = target.environments()
        needs = top_level_needs(requirements.requirements, environments)
        constraints = constraint_specifiers(requirements.constraints, environments)
    except RequirementsError as e:
        err.write(f"{prog}: error: {e}\n")
        return 2
    reporter = Reporter(err, quiet=args.quiet, progress=err.isatty())
    for note in requirements.notes:
        reporter.note(note)
    client = IndexClient(
        reactor, index, jobs=args.jobs, timeout=args.timeout, ca_file=args.index_ca
    )
    warmer = Warmer(
        client,
        target,
        reporter,
        follow_deps=not args.no_deps,
        pre=args.pre or requirements.pre,
        constraints=constraints,
    )
    try:
        report = await warmer.run(needs)
    except WarmError as e:
        fatal: WarmError | None = e
    else:
        fatal = None
    finally:
        reporter.stop()  # before anything else is written to the terminal
        await client.close()
    if fatal is not None:
        err.write(f"{prog}: error: {fatal}\n")
        return 2
    for line in summary_lines(report):
        out.write(line + "\n")
    if report.failures:
        err.write(f"{prog}: error: {len(report.failures)} failed:\n")
        for failure in report.failures:
            err.write(f"  {failure}\n")
        return 1
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the command in its own reactor; returns the exit status."""
    return run_command("pypiproxy warm", lambda reactor: execute(reactor, args, sys.stdout, sys.stderr))
