"""Print the HTTP API's OpenAPI document (``make openapi`` writes docs/openapi.json)."""

from __future__ import annotations

import json
import sys

from annotrain.api.app import create_app
from annotrain.settings import Settings


def document() -> dict[str, object]:
    """The OpenAPI document of the whole app (the defaults: no environment read)."""
    schema: dict[str, object] = create_app(settings=Settings.model_construct()).openapi()
    return schema


if __name__ == "__main__":
    json.dump(document(), sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
