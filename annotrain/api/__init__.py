"""The FastAPI app and its routers (filled by the API issue)."""
