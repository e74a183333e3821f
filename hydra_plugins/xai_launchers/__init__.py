"""xai's Hydra plugins. Hydra instantiates launchers only from the `hydra_plugins` namespace package, so
the submitit launchers that watch every job live here (see launchers.py)."""
