"""One analysis per command: a function of a RunContext and the user's objects returning a typed result,
and the CLI runner that builds those from the Hydra config (see base.py and result.py)."""
