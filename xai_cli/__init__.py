"""xai: train image classifiers, then interrogate them."""

__version__ = "0.1.0"
