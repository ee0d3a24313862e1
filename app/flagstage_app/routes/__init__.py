"""The HTTP routers of the insights API, one module per area."""
