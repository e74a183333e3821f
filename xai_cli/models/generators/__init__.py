"""Generators: models of the images themselves (the β-VAE behind `discrepancy` and `counterfactual`)."""
