"""Counterfactual methods: the smallest realistic change that makes a classifier say a target class.

One class per method, chosen by `_target_` (configs/counterfactual_method/, one file each):
gradient.py   Wachter et al. and the prototype-guided method of Van Looveren & Klaise (need gradients)
latent_rl.py  a learned actor in the β-VAE's latent space, after Samoilescu et al. (classifier outputs only)
"""
