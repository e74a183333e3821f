"""Models: classifiers (one file per family) and, with later analyses, generators."""
