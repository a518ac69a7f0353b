"""How alike two winning tickets are.

- naming.py:    block labels in forward order and ticket-pair labels (plain strings, shared with the report)
- agreement.py: per-layer metrics in forward order, block positions, the layerwise schedule's weights
- claims.py:    the paper's four claims for one round, as effects over ticket pairs with intervals and p-values
- crossed.py:   intervals over ticket pairs and layers together, and the verdict rule
- magnitude.py: the magnitude null (independence given magnitude-rank bins) and the magnitude claim
- summary.py:   the similarity summary: per-round detail and the claims read at the last round (summary.json)
- plots.py:     heatmap, agreement vs depth, claims and layer-rate figures
"""
