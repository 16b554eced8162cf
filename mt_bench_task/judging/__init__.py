"""Judging: the judging job (`job`), one match's judge call(s) (`call`), the request's parameters
(`request`), the one way a job is sent (`execute`: direct or through a Batch API, paced, priced,
the served model noted), the Batch API's files (`batch`, `batch_lines`), the cost (`cost`) and
`mt-bench judge`'s run (`run`). Between `core/` (records, prompts, the judge's spec) and the
clients that answer (tests/test_layers.py)."""
