"""The study's images: decoded once from their source by the `prepare` stage into tensor files that
every training and evaluation stage reads.

- sources.py:  decoding mnist5k, torchvision datasets and image folders at the configured size; missing data
- folder.py:   an image folder's layouts (train/test, class folders, loose images), decoding, centre crop
- prepared.py: the prepare stage's files read back (uint8 or model range), with a shape check
- naming.py:   how the report and the CLI name the data (no torch)
"""
