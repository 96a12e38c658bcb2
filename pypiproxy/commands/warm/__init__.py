"""``pypiproxy warm``: fill a proxy's cache from requirements files ahead of time.

The modules, each depending only on those before it: ``reqfile`` (requirements files),
``targets`` (platform tags, markers), ``choose`` (versions, files, dependencies), ``report``
(the summary, the progress bar), ``client`` (the index over HTTP), ``warmer`` (one run),
``command`` (options, exit status).
"""

from .command import configure, run

__all__ = ["configure", "run"]
