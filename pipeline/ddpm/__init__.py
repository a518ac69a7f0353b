"""The diffusion model itself (Ho et al. 2020); its images are pipeline.data's.

- unet.py:      the DDPM U-Net
- diffusion.py: linear beta schedule, epsilon loss, DDPM and DDIM samplers, sharded sampling
"""
