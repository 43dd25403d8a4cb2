"""The evidence study: every quantiser at equal bits over seeds, budgets, codebook sizes,
noise scales and initialisations, with diagnostics logged over training.

``python -m experiments.run`` trains what is missing (one cached CSV row per run) and
``python -m experiments.analyze`` turns the rows into the tables and figures of the docs'
Evidence page. See ``experiments/README.md``.
"""
