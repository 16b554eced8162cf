"""The `hf` engine: transformers models under our continuous-batching scheduler."""
