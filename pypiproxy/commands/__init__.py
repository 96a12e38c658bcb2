"""The ``pypiproxy`` console script: one module (or folder) per command that is not the server."""
