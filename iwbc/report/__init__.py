"""Tables and figures made from evaluated scores."""
