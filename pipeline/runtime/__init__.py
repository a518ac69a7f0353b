"""Where and how computation runs, never what it computes.

- distributed.py: data-parallel ranks (torchrun) as a runtime resource, and the stage relauncher
- compiling.py:   `torch.compile` of the U-Net with a fallback to eager that says why
- device.py:      this rank's device and its CPU thread budget
"""
