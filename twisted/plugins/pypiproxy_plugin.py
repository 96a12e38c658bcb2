"""The ``twistd pypiproxy`` plugin: an IServiceMaker and nothing else."""

from twisted.application.service import ServiceMaker

pypiproxy = ServiceMaker(
    "pypiproxy",
    "pypiproxy.server",
    "A caching proxy and private index for Python packages",
    "pypiproxy",
)
