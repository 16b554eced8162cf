"""Answer generation: the engine seam and its engines (`hf/`, the endpoint client in `api`)."""
