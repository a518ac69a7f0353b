"""The bottom layer: what every other layer reads.

- config.py: params.yaml as typed, validated sections (`load_params`, `parse_params`)
- errors.py: `ConfigError` (bad params) and `ArtifactError` (an unusable input file), one line each
- io.py:     atomic, byte-stable saves and loads of torch, JSON, text and figures
- paths.py:  where an artifact path is defined: each artifact under a root, and the patterns that read a path back
"""
