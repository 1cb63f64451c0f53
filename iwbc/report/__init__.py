"""Tables, statistics and figures made from evaluated scores: one experiment's (``iwbc run``) and
a benchmark suite's, rebuilt from its run records (``iwbc report``)."""
