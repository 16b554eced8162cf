"""The `vllm` engine: vLLM's offline engine behind the seam (engine.py), its judging face
(judge_decoder.py) and its entry points (backend.py)."""
