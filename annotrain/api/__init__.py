"""The HTTP API: ``create_app`` and one router per resource under ``/api/v1``."""

from annotrain.api.app import create_app

__all__ = ["create_app"]
