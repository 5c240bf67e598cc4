"""Use cases over the ports (filled as the API and jobs arrive)."""
