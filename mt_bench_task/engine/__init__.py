"""Answer generation: the engine seam (`base`, `driver`) and its engines, one folder each (`hf/`,
`vllm/`, chosen by `registry`), data parallel over any of them (`data_parallel`), the local judge's
face of the seam (`local_judge`), and the endpoint client (`api`)."""
