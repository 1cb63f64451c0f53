"""Benchmark sweeps: suites of (dataset × method × seed) as TOML, a resumable runner that writes
one JSON record per run, and local or Ray executors (``iwbc bench``)."""
