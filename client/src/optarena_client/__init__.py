"""The optarena client: `Client(url, api_key=...)` for notebooks and scripts."""

from optarena_client.api import ApiError, Event, Unreachable
from optarena_client.client import Client, Comparison, Plot

__all__ = ["ApiError", "Client", "Comparison", "Event", "Plot", "Unreachable"]
