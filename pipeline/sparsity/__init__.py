"""Which weights survive, and where a ticket restarts from.

- masks.py:    `Mask`, a parameter name -> bool tensor mapping, bound to a model on its device
- pruning.py:  one IMP round under a schedule (uniform, global, lamp, layerwise, random)
- rewind.py:   the weights a round restarts from (theta0, theta_k, a fresh draw), seeded draws
- controls.py: the reinit and random-mask controls of a ticket
- tickets.py:  a trained network on disk (weights, EMA weights, mask)
- rules.py:    params rules that need the U-Net's layer shapes
"""
