"""DIG: discrepancy intervals between models, searched along counterfactual segments.

After Renard, Laugel & Detyniecki, "Understanding prediction discrepancies in machine learning
classifiers" (arXiv 2104.05467), and its image extension DIG-CV (Laugel, Renard & Detyniecki), which runs
the same search in a β-VAE's latent space. Written here because no library implements it; the public
reference code is tabular, loops per segment and is not a package.

pool.py      the models under comparison, queried together
space.py     where segments live: a VAE's latent space, or the raw inputs
segments.py  anchors and their counterfactual neighbours
search.py    the batched grid walk and bisection that delimit discrepancy areas
refine.py    tracing found areas sideways: more queries where the disagreement is
coverage.py  how much of the disagreement the areas found cover (the benchmark's and tests' measure)
realism.py   how far visited points lie from real data
"""
