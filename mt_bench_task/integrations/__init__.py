"""Front doors for other frameworks: the `evaluate` metric and the inspect_ai task."""
