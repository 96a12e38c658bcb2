"""pypiproxy: a caching reverse proxy and private package index for Python, on Twisted.

The packages are its layers, each depending only on those below it::

    server, commands     wiring: options -> Config -> the components; console commands
    web, auth            the resource tree and the site gate
    private, cache       the private store and tier; the page and file caches
    upstream             the one HTTP client; fetching and parsing index pages
    simple, config       the Simple API (pure); configuration values
"""

__version__ = "0.1.0"
