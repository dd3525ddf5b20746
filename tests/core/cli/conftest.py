"""The stand-in Letta of the resource tests, for the commands tested here that read a server."""

from tests.plugins.resources.conftest import letta  # noqa: F401  (a fixture: pytest finds it by its name here)
