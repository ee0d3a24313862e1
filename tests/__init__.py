"""flagstage's tests; a package so that shared helpers import as `tests.<folder>.<module>`."""
