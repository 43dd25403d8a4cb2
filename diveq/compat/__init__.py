"""Compatibility with other quantisation packages, by import path.

- :mod:`diveq.compat.official`: the eight classes of the official ``diveq`` 0.1.3 package
  (names, argument order, defaults, results, ``inference`` and its checkpoints), built on the
  torch layers, so a script written for it runs after changing one import line.

Importing :mod:`diveq.compat` imports no framework; :mod:`diveq.compat.official` imports torch.
"""
