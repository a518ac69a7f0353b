"""The diffusion model itself (Ho et al. 2020).

- unet.py:      the DDPM U-Net
- diffusion.py: linear beta schedule, epsilon loss, DDPM and DDIM samplers, sharded sampling
- data.py:      training and held-out images (mnist5k offline, torchvision datasets)
"""
