"""Image cases for ``benchmarks/catalogue.py``: SSIM of 16 x 3 x 256 x 256
float32 images (``--quick``: 2 x 3 x 64 x 64), value and gradient with
respect to the first image.

Reference: PyTorch autograd, on the CPU, of the same SSIM written as
pytorch-msssim writes it (each of the five local statistics filtered by two
depthwise 1-D ``conv2d`` passes, 'valid'), with the same float64 Gaussian
window cast to float32.
"""

from __future__ import annotations

import numpy as np

import ptyloss_xp as pl
from ptyloss_xp.losses._filters import gaussian_window

from catalogue import Case


def _images(shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=shape).astype(np.float32)
    noisy = x + rng.normal(scale=0.1, size=shape).astype(np.float32)
    return x, np.clip(noisy, 0.0, 1.0).astype(np.float32)


def _ssim_torch(torch, x, y, sigma, data_range, k1=0.01, k2=0.03):
    conv2d = torch.nn.functional.conv2d
    c = x.shape[1]
    w = torch.tensor(gaussian_window(sigma), dtype=torch.float64).to(torch.float32)
    along_w = w.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    along_h = w.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    target = torch.from_numpy(y)

    def blur(z):
        return conv2d(conv2d(z, along_w, groups=c), along_h, groups=c)

    def run():
        t = torch.from_numpy(x).requires_grad_(True)
        mu_x, mu_y = blur(t), blur(target)
        s_xx = blur(t * t) - mu_x * mu_x
        s_yy = blur(target * target) - mu_y * mu_y
        s_xy = blur(t * target) - mu_x * mu_y
        s_map = ((2 * mu_x * mu_y + c1) * (2 * s_xy + c2)
                 / ((mu_x * mu_x + mu_y * mu_y + c1) * (s_xx + s_yy + c2)))
        loss = (1 - s_map.mean(dim=(1, 2, 3))).mean()
        loss.backward()
        return loss, {"input": t.grad}

    return run


def cases(torch, quick):
    shape = (2, 3, 64, 64) if quick else (16, 3, 256, 256)
    x, y = _images(shape, 0)
    loss = pl.get("ssim", data_range=1.0)

    def library():
        v, g = loss.value_and_grad(x, y)
        return v, {"input": g}

    label = f"ssim {'x'.join(map(str, shape))} f32"
    return [Case(label, library, _ssim_torch(torch, x, y, loss.sigma, loss.data_range),
                 "torch autograd, depthwise conv2d (pytorch-msssim's form)", x.nbytes)]
