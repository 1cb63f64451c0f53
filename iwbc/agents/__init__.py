"""Every trained method as an agent of :mod:`iwbc.core.agent`'s interface."""
