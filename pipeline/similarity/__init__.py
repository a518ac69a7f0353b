"""How alike two winning tickets are.

- agreement.py: per-layer metrics in forward order, block positions, the layerwise schedule's weights
- claims.py:    the paper's claims as effects with intervals and p-values
- plots.py:     heatmap, agreement vs depth, claims and layer-rate figures
"""
