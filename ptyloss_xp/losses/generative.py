"""Generative models: the VAE's KL term and ELBO, GAN losses, and the 1-D
Wasserstein-1 distance.

Conventions:

- The GAN losses take the discriminator's (critic's) raw outputs, the
  *logits*, never probabilities: ``real_logits`` on real samples and
  ``fake_logits`` on generated ones. Both are shaped (batch, *), with the
  same trailing shape but batches that may differ in size; each term is a
  mean over its own array. The losses that apply a sigmoid use the
  softplus / log-sigmoid forms of the classification family, so logits of
  +-1e4 give finite values and gradients.
- Every loss is the quantity to *minimise*: the discriminator's loss is the
  negated objective it maximises. The gradient is with respect to the
  logits; chain it through your discriminator's or generator's own backward
  pass (docs/generative.md shows a plain NumPy training step).
- The VAE losses take the encoder's ``mu`` and ``logvar`` (``log sigma^2``)
  shaped (N, D); the KL is summed over the D latent dimensions and the
  reduction ("mean" by default) runs over the batch.
"""

from __future__ import annotations

import numpy as np

from .._backend import device_of
from .._registry import Loss, reduce, register
from .._validate import REDUCTION, Arg, Param
from .classification import _EXP_LIMIT, BinaryCrossEntropy, _logit_bce, _sigmoids, _softplus

__all__ = [
    "VAEKL", "VAEELBO", "GANDiscriminator", "GANGenerator", "LSGANDiscriminator",
    "LSGANGenerator", "HingeGANDiscriminator", "HingeGANGenerator", "WGANCritic",
    "WGANGenerator", "WGANGradientPenalty", "Wasserstein1D", "WassersteinHistogram",
]

_FAMILY = "generative"


def _row_sum(xp, x):
    """Sum over every axis but the first (the batch); ``x`` itself when 1-D."""
    return x if x.ndim == 1 else xp.sum(x, axis=tuple(range(1, x.ndim)))


# --------------------------------------------------------------------------
# Variational autoencoder


_MU = Arg("mu", ("N", "D"), grad=True, doc="encoder means of the latent Gaussian")
_LOGVAR = Arg("logvar", ("N", "D"), low=-_EXP_LIMIT, high=_EXP_LIMIT, grad=True,
              doc="encoder log-variances log(sigma^2), same shape as mu")
_BETA = Param(1.0, low=0.0, doc="weight of the KL term (beta-VAE)")


def _gaussian_kl(xp, mu, logvar, need_grad):
    """Per-sample KL(N(mu, exp(logvar)) || N(0, I)) and its two partial
    derivatives. ``expm1(lv) - lv`` keeps the precision of ``exp(lv) - 1 -
    lv`` near ``lv = 0``, where it is of second order."""
    em1 = xp.expm1(logvar)
    kl = 0.5 * xp.sum(mu * mu + em1 - logvar, axis=1)
    return kl, ((mu, 0.5 * em1) if need_grad else None)


class _VAE(Loss):
    family = _FAMILY

    def fix_sample(self, arrays, rng):
        # Log-variances near the bound of 80 give values of 1e34, whose
        # rounding swamps finite differences of the other inputs: drawn test
        # inputs are typical encoder outputs, in [-4, 4]. The bound itself
        # (float32's exp) is tested in tests/test_generative.py.
        return {**arrays, "logvar": 4.0 * np.tanh(arrays["logvar"] / 20.0)}


@register
class VAEKL(_VAE):
    """KL divergence of the VAE's Gaussian posterior from the standard normal.

    Value per sample ``n`` (Kingma & Welling 2014, appendix B)::

        KL_n = 1/2 * sum_d (mu_nd**2 + exp(logvar_nd) - 1 - logvar_nd)

    summed over the latent dimensions ``d`` and reduced over the batch by
    ``reduction`` ("mean" by default; "sum" is what PyTorch's VAE example
    adds to its summed reconstruction error).

    Gradients: ``mu`` with respect to ``mu`` and ``(exp(logvar) - 1) / 2``
    with respect to ``logvar``, times the reduction's factor.
    ``exp(logvar) - 1`` is computed with ``expm1``, accurate near 0.

    Domain: finite ``mu``; ``logvar`` in [-80, 80] (``exp(80)`` = 5.5e34 stays
    finite in float32 sums); both (N, D), the same shape.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> mu = np.array([[0.0, 1.0]]); logvar = np.array([[0.0, np.log(2.0)]])
    >>> v, (g_mu, g_lv) = pl.get("vae_kl").value_and_grad(mu, logvar)
    >>> round(float(v), 6), g_mu.tolist(), g_lv.tolist()    # (1 + 2 - 1 - log 2) / 2
    (0.653426, [[0.0, 1.0]], [[0.0, 0.5]])
    """

    name = "vae_kl"
    args = (_MU, _LOGVAR)
    params = {"reduction": REDUCTION}
    param_cases = ({"reduction": "sum"}, {"reduction": "none"})
    formula = (r"\mathrm{KL}_n = \tfrac12 \sum_d \big(\mu_{nd}^2 + e^{v_{nd}} - 1 - v_{nd}\big),"
               r"\ v = \log\sigma^2")
    gradient = (r"\partial \mathrm{KL}_n/\partial \mu_{nd} = \mu_{nd},\ "
                r"\partial \mathrm{KL}_n/\partial v_{nd} = \tfrac12 (e^{v_{nd}} - 1)")
    reference = ("Kingma & Welling, Auto-Encoding Variational Bayes, ICLR (2014), appendix B; "
                 "PyTorch's examples/vae (-0.5 * sum(1 + logvar - mu^2 - exp(logvar)), "
                 "summed over the batch: reduction='sum' here)")

    def _evaluate(self, xp, a, need_grad):
        kl, grads = _gaussian_kl(xp, a["mu"], a["logvar"], need_grad)
        value, factor = reduce(xp, kl, self.reduction)
        return value, (tuple(g * factor for g in grads) if need_grad else None)


_BCE = BinaryCrossEntropy()
_RECON = {
    "bernoulli": Arg("recon", ("N", "*"), low=0.0, high=1.0, grad=True,
                     doc="decoder output: Bernoulli probabilities"),
    "bernoulli_logits": Arg("recon", ("N", "*"), grad=True,
                            doc="decoder output: Bernoulli logits"),
    "gaussian": Arg("recon", ("N", "*"), grad=True, doc="decoder output: Gaussian means"),
}
_DATA = {
    "bernoulli": Arg("target", ("N", "*"), low=0.0, high=1.0,
                     doc="the encoded data x, in [0, 1]"),
    "gaussian": Arg("target", ("N", "*"), doc="the encoded data x"),
}


@register
class VAEELBO(_VAE):
    """Negative evidence lower bound of a VAE: reconstruction plus beta * KL.

    Value per sample ``n``::

        loss_n = sum_i rec(recon_ni, x_ni) + beta * KL_n

    with ``KL_n`` as in :class:`VAEKL` and the reconstruction term chosen by
    ``likelihood``:

    - ``"bernoulli"``: binary cross entropy of probabilities,
      ``-(x log r + (1 - x) log(1 - r))``, with PyTorch's ``BCELoss``
      safeguards (logs clamped at -100, gradient denominator at 1e-12;
      see ``binary_cross_entropy``);
    - ``"bernoulli_logits"``: the same from logits, in the softplus form of
      ``binary_cross_entropy_with_logits`` (finite for logits of +-1e4);
    - ``"gaussian"``: the sum of squares ``(r - x)**2``, PyTorch's
      ``mse_loss(reduction="sum")``; this is the Gaussian negative
      log-likelihood with variance 1/2, up to a constant (divide by
      ``2 sigma^2`` yourself, or adjust ``beta``, for another variance).

    The sum runs over every axis of ``recon`` but the batch; ``reduction``
    ("mean" by default) over the batch. ``beta = 1`` is the ELBO of Kingma &
    Welling (2014); ``beta > 1`` the beta-VAE of Higgins et al. (2017).
    PyTorch's VAE example is ``likelihood="bernoulli", reduction="sum"``.

    Gradients, in ``wrt`` order ``(recon, mu, logvar)``: the reconstruction
    term's elementwise derivative (``(r - x) / max(r (1 - r), 1e-12)``,
    ``sigmoid(r) - x`` or ``2 (r - x)``), and ``beta`` times the KL's
    ``mu`` and ``(exp(logvar) - 1) / 2``; all times the reduction's factor.

    Domain: ``recon`` and ``target`` (N, ...) of one shape, ``mu`` and
    ``logvar`` (N, D) with the same N; probabilities and Bernoulli data in
    [0, 1]; ``logvar`` in [-80, 80]; ``beta >= 0``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> x = np.array([[1.0, 0.0]]); r = np.array([[0.5, 0.5]])
    >>> mu = np.zeros((1, 3)); logvar = np.zeros((1, 3))
    >>> v, (g_r, g_mu, g_lv) = pl.get("vae_elbo").value_and_grad(r, x, mu, logvar)
    >>> round(float(v), 6), g_r.tolist()                    # 2 log 2, KL = 0
    (1.386294, [[-2.0, 2.0]])
    """

    name = "vae_elbo"
    args = (_RECON["bernoulli"], _DATA["bernoulli"], _MU, _LOGVAR)
    params = {
        "likelihood": Param("bernoulli", kind="choice",
                            choices=("bernoulli", "bernoulli_logits", "gaussian"),
                            doc="reconstruction term: BCE of probabilities, BCE of "
                                "logits, or sum of squares"),
        "beta": _BETA,
        "reduction": REDUCTION,
    }
    param_cases = (
        {"likelihood": "bernoulli_logits", "beta": 4.0},
        {"likelihood": "gaussian", "reduction": "sum"},
        {"likelihood": "bernoulli", "beta": 0.5, "reduction": "none"},
    )
    formula = (r"\ell_n = \sum_i \mathrm{rec}(r_{ni}, x_{ni}) + \beta\,\mathrm{KL}_n,\ "
               r"\mathrm{rec} \in \{\mathrm{BCE}(r, x),\ \mathrm{BCE}(\sigma(r), x),\ (r - x)^2\}")
    gradient = (r"\partial \ell_n/\partial r_{ni} = \mathrm{rec}'(r_{ni}, x_{ni}),\ "
                r"\partial \ell_n/\partial \mu = \beta \mu,\ "
                r"\partial \ell_n/\partial v = \tfrac{\beta}{2}(e^{v} - 1)")
    reference = ("Kingma & Welling, ICLR (2014); Higgins et al., beta-VAE, ICLR (2017); "
                 "PyTorch's examples/vae is likelihood='bernoulli', reduction='sum' "
                 "(BCE with torch's clamp at -100)")

    def _setup(self):
        data = "gaussian" if self.likelihood == "gaussian" else "bernoulli"
        self.args = (_RECON[self.likelihood], _DATA[data], _MU, _LOGVAR)

    def _reconstruction(self, xp, r, x, need_grad):
        order = 1 if need_grad else 0
        if self.likelihood == "bernoulli":
            loss, d1, _ = _BCE._pointwise(xp, {"input": r, "target": x}, order)
        elif self.likelihood == "bernoulli_logits":
            loss, d1 = _logit_bce(xp, r, x, order)[:2]
        else:
            diff = r - x
            loss, d1 = diff * diff, (2.0 * diff if need_grad else None)
        return _row_sum(xp, loss), d1

    def _evaluate(self, xp, a, need_grad):
        rec, d_rec = self._reconstruction(xp, a["recon"], a["target"], need_grad)
        kl, d_kl = _gaussian_kl(xp, a["mu"], a["logvar"], need_grad)
        value, factor = reduce(xp, rec + self.beta * kl, self.reduction)
        if not need_grad:
            return value, None
        scale = self.beta * factor
        return value, (d_rec * factor, d_kl[0] * scale, d_kl[1] * scale)


# --------------------------------------------------------------------------
# GAN losses on discriminator logits


_REAL = Arg("real_logits", ("N", "*"), grad=True,
            doc="discriminator (critic) outputs on real samples, before any sigmoid")
_FAKE = Arg("fake_logits", ("M", "*"), grad=True,
            doc="discriminator (critic) outputs on generated samples; batch M may differ from N")


def _mean_of(xp, elementwise):
    """``(mean, 1 / count)`` of an elementwise term over its whole array."""
    return reduce(xp, elementwise, "mean")


class _Discriminator(Loss):
    """``mean f(real_logits) + mean g(fake_logits)``: subclasses give the
    elementwise terms and their derivatives in :meth:`_real` and
    :meth:`_fake` (``(term, derivative)``, the derivative ``None`` unless
    ``need_grad``)."""

    family = _FAMILY
    args = (_REAL, _FAKE)

    def _real(self, xp, r, need_grad):
        raise NotImplementedError

    def _fake(self, xp, f, need_grad):
        raise NotImplementedError

    def _evaluate(self, xp, a, need_grad):
        tr, dr = self._real(xp, a["real_logits"], need_grad)
        tf, df = self._fake(xp, a["fake_logits"], need_grad)
        vr, cr = _mean_of(xp, tr)
        vf, cf = _mean_of(xp, tf)
        return vr + vf, ((dr * cr, df * cf) if need_grad else None)


class _Generator(Loss):
    """``mean g(fake_logits)``, the elementwise term from :meth:`_fake`."""

    family = _FAMILY
    args = (Arg("fake_logits", ("*",), grad=True,
                doc="discriminator (critic) outputs on generated samples"),)

    def _fake(self, xp, f, need_grad):
        raise NotImplementedError

    def _evaluate(self, xp, a, need_grad):
        t, d = self._fake(xp, a["fake_logits"], need_grad)
        value, factor = _mean_of(xp, t)
        return value, ((d * factor,) if need_grad else None)


@register
class GANDiscriminator(_Discriminator):
    """The original (minimax) GAN discriminator loss, from logits.

    Value, with ``r`` the logits on real and ``f`` on generated samples::

        L_D = mean(softplus(-r)) + mean(softplus(f))
            = -mean(log sigmoid(r)) - mean(log(1 - sigmoid(f)))

    the negated objective the discriminator of Goodfellow et al. (2014)
    maximises; each mean is over its own batch. It is PyTorch's
    ``BCEWithLogitsLoss`` against 1 on ``r`` plus against 0 on ``f`` (the
    DCGAN example's ``errD``), optax's ``sigmoid_binary_cross_entropy``
    likewise.

    Gradients: ``-sigmoid(-r) / N`` with respect to ``real_logits`` and
    ``sigmoid(f) / M`` with respect to ``fake_logits``. Softplus and the
    sigmoids are computed without overflow: logits of +-1e4 are fine.

    Domain: finite logits (N, *) and (M, *), the same trailing shape.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> r = np.array([0.0, 1e4]); f = np.array([-1e4, 0.0, 0.0])
    >>> v, (gr, gf) = pl.get("gan_discriminator").value_and_grad(r, f)
    >>> round(float(v), 6), gr.tolist(), np.round(gf, 6).tolist()  # log2/2 + 2 log2/3
    (0.808672, [-0.25, -0.0], [0.0, 0.166667, 0.166667])
    """

    name = "gan_discriminator"
    formula = (r"L_D = \langle \mathrm{softplus}(-r) \rangle + \langle \mathrm{softplus}(f)"
               r" \rangle = -\langle \log\sigma(r) \rangle - \langle \log(1-\sigma(f)) \rangle")
    gradient = (r"\partial L_D/\partial r_i = -\sigma(-r_i)/N,\ "
                r"\partial L_D/\partial f_j = \sigma(f_j)/M")
    reference = ("Goodfellow et al., Generative Adversarial Nets, NeurIPS (2014); "
                 "torch.nn.BCEWithLogitsLoss on real (label 1) plus fake (label 0) logits, "
                 "as in PyTorch's DCGAN example")

    def _real(self, xp, r, need_grad):
        return _softplus(xp, -r), (-_sigmoids(xp, r)[1] if need_grad else None)

    def _fake(self, xp, f, need_grad):
        return _softplus(xp, f), (_sigmoids(xp, f)[0] if need_grad else None)


@register
class GANGenerator(_Generator):
    """The original GAN generator loss, non-saturating or saturating, from logits.

    Value, with ``f`` the discriminator's logits on generated samples:

    - non-saturating (default; Goodfellow et al. 2014, section 3)::

          L_G = mean(softplus(-f)) = -mean(log sigmoid(f))

    - ``saturating=True``, the minimax game's own generator term::

          L_G = mean(log(1 - sigmoid(f))) = -mean(softplus(f))

      which is **negative by design** (a log of a probability) and whose
      gradient vanishes when the discriminator rejects the samples
      confidently (``f`` very negative), hence the non-saturating form.

    Gradient with respect to ``fake_logits``: ``-sigmoid(-f) / M``
    (non-saturating) or ``-sigmoid(f) / M`` (saturating). Stable for logits
    of +-1e4. The non-saturating loss is PyTorch's ``BCEWithLogitsLoss``
    against label 1 (the DCGAN example's ``errG``).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> f = np.array([0.0, -1e4])
    >>> v, g = pl.get("gan_generator").value_and_grad(f)
    >>> float(v), g.tolist()                                      # (log 2 + 1e4) / 2
    (5000.346573590279, [-0.25, -0.5])
    >>> v, g = pl.get("gan_generator", saturating=True).value_and_grad(f)
    >>> float(v), g.tolist()                                      # -log(2) / 2
    (-0.34657359027997264, [-0.25, -0.0])
    """

    name = "gan_generator"
    params = {"saturating": Param(False, kind="bool",
                                  doc="minimise log(1 - D(G(z))) (the minimax form) instead "
                                      "of -log D(G(z))")}
    param_cases = ({"saturating": True},)
    formula = (r"L_G = \langle \mathrm{softplus}(-f) \rangle\ \text{(non-saturating)};\ "
               r"L_G = -\langle \mathrm{softplus}(f) \rangle = \langle \log(1 - \sigma(f)) "
               r"\rangle\ \text{(saturating, } \le 0)")
    gradient = (r"\partial L_G/\partial f_j = -\sigma(-f_j)/M\ \text{(non-saturating)},\ "
                r"-\sigma(f_j)/M\ \text{(saturating)}")
    reference = ("Goodfellow et al., NeurIPS (2014), section 3 (non-saturating heuristic); "
                 "torch.nn.BCEWithLogitsLoss against label 1 (DCGAN example)")

    def _fake(self, xp, f, need_grad):
        if self.saturating:
            return -_softplus(xp, f), (-_sigmoids(xp, f)[0] if need_grad else None)
        return _softplus(xp, -f), (-_sigmoids(xp, f)[1] if need_grad else None)


@register
class LSGANDiscriminator(_Discriminator):
    """Least-squares GAN discriminator loss (Mao et al. 2017).

    Value, on the discriminator's raw outputs (no sigmoid)::

        L_D = 1/2 mean((r - b)**2) + 1/2 mean((f - a)**2)

    with ``b = real_target`` (default 1) and ``a = fake_target`` (default
    0), the paper's 0-1 coding. Gradients: ``(r - b) / N`` and ``(f - a) /
    M``. It is PyTorch's ``0.5 * (mse_loss(r, b) + mse_loss(f, a))``. Domain:
    finite outputs; squares of +-1e4 stay finite.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> v, (gr, gf) = pl.get("lsgan_discriminator").value_and_grad(
    ...     np.array([1.0, 0.0]), np.array([0.5]))
    >>> float(v), gr.tolist(), gf.tolist()                   # 1/2 (1/2) + 1/2 (1/4)
    (0.375, [0.0, -0.5], [0.5])
    """

    name = "lsgan_discriminator"
    params = {"real_target": Param(1.0, doc="value b the discriminator aims for on real data"),
              "fake_target": Param(0.0, doc="value a the discriminator aims for on fakes")}
    param_cases = ({"real_target": 1.0, "fake_target": -1.0},)
    formula = (r"L_D = \tfrac12 \langle (r - b)^2 \rangle + \tfrac12 \langle (f - a)^2 \rangle")
    gradient = r"\partial L_D/\partial r_i = (r_i - b)/N,\ \partial L_D/\partial f_j = (f_j - a)/M"
    reference = ("Mao et al., Least Squares Generative Adversarial Networks, ICCV (2017), "
                 "eq. (2) with a = 0, b = 1 by default")

    def _real(self, xp, r, need_grad):
        d = r - self.real_target
        return 0.5 * d * d, d

    def _fake(self, xp, f, need_grad):
        d = f - self.fake_target
        return 0.5 * d * d, d


@register
class LSGANGenerator(_Generator):
    """Least-squares GAN generator loss (Mao et al. 2017).

    Value: ``L_G = 1/2 mean((f - c)**2)`` on the discriminator's raw outputs
    for generated samples, ``c = target`` (default 1, the value the
    discriminator gives real data). Gradient: ``(f - c) / M``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> v, g = pl.get("lsgan_generator").value_and_grad(np.array([0.0, 1.0]))
    >>> float(v), g.tolist()
    (0.25, [-0.5, 0.0])
    """

    name = "lsgan_generator"
    params = {"target": Param(1.0, doc="value c the generator wants the discriminator to output")}
    param_cases = ({"target": 0.0},)
    formula = r"L_G = \tfrac12 \langle (f - c)^2 \rangle"
    gradient = r"\partial L_G/\partial f_j = (f_j - c)/M"
    reference = "Mao et al., ICCV (2017), eq. (2) with c = 1 by default"

    def _fake(self, xp, f, need_grad):
        d = f - self.target
        return 0.5 * d * d, d


@register
class HingeGANDiscriminator(_Discriminator):
    """Hinge GAN discriminator loss (Lim & Ye 2017; Miyato et al. 2018).

    Value, on the raw outputs::

        L_D = mean(max(0, 1 - r)) + mean(max(0, 1 + f))

    Gradients: ``-[r < 1] / N`` and ``[f > -1] / M``; at the kinks ``r = 1``
    and ``f = -1`` the gradient is 0 (PyTorch's ``relu`` backward). Pair it
    with ``hinge_gan_generator``. Domain: finite outputs.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> v, (gr, gf) = pl.get("hinge_gan_discriminator").value_and_grad(
    ...     np.array([2.0, 0.5]), np.array([-3.0, 0.0]))
    >>> float(v), gr.tolist(), gf.tolist()                   # 0.5/2 + 1/2
    (0.75, [0.0, -0.5], [0.0, 0.5])
    """

    name = "hinge_gan_discriminator"
    formula = r"L_D = \langle \max(0, 1 - r) \rangle + \langle \max(0, 1 + f) \rangle"
    gradient = (r"\partial L_D/\partial r_i = -[r_i < 1]/N,\ "
                r"\partial L_D/\partial f_j = [f_j > -1]/M")
    reference = ("Lim & Ye, Geometric GAN, arXiv:1705.02894 (2017); Miyato et al., Spectral "
                 "Normalization for GANs, ICLR (2018)")

    def nonsmooth_distance(self, name, arrays):
        x = arrays[name]
        return np.abs(1.0 - x) if name == "real_logits" else np.abs(1.0 + x)

    def _real(self, xp, r, need_grad):
        m = 1.0 - r
        return xp.maximum(m, 0.0), (-xp.astype(m > 0, r.dtype) if need_grad else None)

    def _fake(self, xp, f, need_grad):
        m = 1.0 + f
        return xp.maximum(m, 0.0), (xp.astype(m > 0, f.dtype) if need_grad else None)


@register
class WGANCritic(_Discriminator):
    """Wasserstein GAN critic loss (Arjovsky et al. 2017).

    Value: ``L_C = mean(f) - mean(r)``, the negated estimate of the
    Wasserstein-1 distance the critic maximises, on its raw outputs.
    Gradients: ``-1 / N`` on ``real_logits`` and ``1 / M`` on
    ``fake_logits``. The critic must be kept 1-Lipschitz (weight clipping,
    or add ``wgan_gp``).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> v, (gr, gf) = pl.get("wgan_critic").value_and_grad(np.array([1.0, 3.0]), np.array([0.5]))
    >>> float(v), gr.tolist(), gf.tolist()
    (-1.5, [-0.5, -0.5], [1.0])
    """

    name = "wgan_critic"
    formula = r"L_C = \langle f \rangle - \langle r \rangle"
    gradient = r"\partial L_C/\partial r_i = -1/N,\ \partial L_C/\partial f_j = 1/M"
    reference = "Arjovsky, Chintala & Bottou, Wasserstein GAN, ICML (2017), algorithm 1"

    def _real(self, xp, r, need_grad):
        return -r, (xp.full(r.shape, -1.0, dtype=r.dtype, device=device_of(r))
                    if need_grad else None)

    def _fake(self, xp, f, need_grad):
        return f, (xp.ones_like(f) if need_grad else None)


@register
class WGANGenerator(_Generator):
    """Wasserstein GAN generator loss (Arjovsky et al. 2017).

    Value: ``L_G = -mean(f)`` on the critic's raw outputs for generated
    samples; gradient ``-1 / M``. The hinge GAN's generator loss is the same
    (``hinge_gan_generator``).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> v, g = pl.get("wgan_generator").value_and_grad(np.array([1.0, 3.0]))
    >>> float(v), g.tolist()
    (-2.0, [-0.5, -0.5])
    """

    name = "wgan_generator"
    formula = r"L_G = -\langle f \rangle"
    gradient = r"\partial L_G/\partial f_j = -1/M"
    reference = "Arjovsky, Chintala & Bottou, ICML (2017), algorithm 1"

    def _fake(self, xp, f, need_grad):
        return -f, (xp.full(f.shape, -1.0, dtype=f.dtype, device=device_of(f))
                    if need_grad else None)


@register
class HingeGANGenerator(WGANGenerator):
    """Hinge GAN generator loss: ``-mean(f)``, the same as ``wgan_generator``.

    The generator's half of the hinge GAN (Lim & Ye 2017; Miyato et al.
    2018) is not a hinge: it is the Wasserstein generator loss, whose code
    this alias shares; see ``hinge_gan_discriminator`` for the other half.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> float(pl.get("hinge_gan_generator").value(np.array([-1.0, 0.0])))
    0.5
    """

    name = "hinge_gan_generator"
    reference = ("alias of wgan_generator; Lim & Ye, arXiv:1705.02894 (2017); "
                 "Miyato et al., ICLR (2018)")


@register
class WGANGradientPenalty(Loss):
    """WGAN-GP gradient penalty on input gradients the user computed.

    Value, with ``g_n`` the gradient of the critic's output with respect to
    its input at the interpolate ``x_n = eps x_real + (1 - eps) x_fake``,
    computed by the caller (by their own backward pass), one row per
    sample::

        P = weight * mean_n (||g_n||_2 - 1)**2

    the norm taken over all axes of a row (Gulrajani et al. 2017, algorithm
    1; ``weight`` is their lambda, default 10). The loss takes ``g``, not
    the critic: differentiate the penalty with respect to ``g`` here, then
    chain through the critic's input-gradient yourself (a second-order
    backward pass, which this library cannot do for you).

    Gradient with respect to ``grads``: ``2 weight (||g_n|| - 1) g_n /
    (||g_n|| N)``; 0 for a row that is exactly 0, where the norm has a kink
    (PyTorch's ``vector_norm`` backward does the same). PyTorch's reference
    is ``weight * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()``.

    Domain: finite ``grads`` shaped (N, ...); ``weight >= 0``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> g = np.array([[3.0, 4.0], [0.0, 0.0]])
    >>> v, dg = pl.get("wgan_gp").value_and_grad(g)
    >>> float(v), dg.tolist()                           # 10 * (16 + 1) / 2
    (85.0, [[24.0, 32.0], [0.0, 0.0]])
    """

    name = "wgan_gp"
    family = _FAMILY
    args = (Arg("grads", ("N", "*"), grad=True,
                doc="gradients of the critic's output with respect to its inputs, one row "
                    "per sample"),)
    params = {"weight": Param(10.0, low=0.0, doc="penalty coefficient lambda")}
    param_cases = ({"weight": 1.0},)
    formula = r"P = \lambda \langle (\|g_n\|_2 - 1)^2 \rangle_n"
    gradient = (r"\partial P/\partial g_n = 2\lambda (\|g_n\| - 1)\, g_n / (\|g_n\| N);"
                r"\ 0 \text{ for } g_n = 0")
    reference = ("Gulrajani et al., Improved Training of Wasserstein GANs, NeurIPS (2017), "
                 "algorithm 1")

    def nonsmooth_distance(self, name, arrays):
        g = arrays[name]
        norm = np.sqrt(np.sum(g * g, axis=tuple(range(1, g.ndim)), keepdims=True))
        return np.broadcast_to(norm, g.shape)

    def _evaluate(self, xp, a, need_grad):
        g = a["grads"]
        norm = xp.sqrt(_row_sum(xp, g * g))
        value, factor = reduce(xp, self.weight * (norm - 1.0) ** 2, "mean")
        if not need_grad:
            return value, None
        coef = xp.where(norm > 0, 1.0 - 1.0 / xp.where(norm > 0, norm, 1.0), 0.0)
        coef = xp.reshape(coef, coef.shape + (1,) * (g.ndim - 1))
        return value, ((2.0 * self.weight * factor) * coef * g,)


# --------------------------------------------------------------------------
# Wasserstein-1 in one dimension


def _sorted_pairing(xp, x):
    """Sorted ``x`` and each element's rank in it: the stable sort (equal
    values keep their index order) and its inverse permutation, the
    argsort of the argsort."""
    order = xp.argsort(x, stable=True)
    return xp.take(x, order, axis=0), xp.argsort(order)


@register
class Wasserstein1D(Loss):
    """Wasserstein-1 distance between two equal-size samples on the real line.

    Value: ``W = mean_k |u_(k) - v_(k)|`` with ``u_(k)``, ``v_(k)`` the
    sorted samples: the optimal transport between two empirical measures of
    ``N`` equal atoms pairs them in sorted order. Equal to
    ``scipy.stats.wasserstein_distance(u, v)`` (and to its ``u_weights``,
    ``v_weights`` left out).

    Gradient: element ``u_i`` of rank ``k`` gets ``sign(u_(k) - v_(k)) /
    N``, element ``v_j`` of rank ``k`` gets ``-sign(u_(k) - v_(k)) / N``
    (0 where the pair is equal, PyTorch's ``sign(0) = 0`` of ``abs``).

    Ties: ranks come from a stable sort, so of equal values the one with
    the smaller index gets the lower rank. The value does not depend on
    it; the gradient is then the one of that pairing, which is what
    PyTorch's autograd gives through ``torch.sort(stable=True)`` (a
    subgradient, since the distance has a kink there).

    Domain: finite 1-D ``u`` and ``v`` of one length ``N`` (for samples of
    different sizes or weights use scipy; they have no sort pairing).

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> u = np.array([0.0, 3.0, 1.0]); v = np.array([5.0, 1.5, 0.5])
    >>> v_, (gu, gv) = pl.get("wasserstein_1d").value_and_grad(u, v)
    >>> round(float(v_), 6), np.round(3 * gu, 6).tolist(), np.round(3 * gv, 6).tolist()
    (1.0, [-1.0, -1.0, -1.0], [1.0, 1.0, 1.0])
    """

    name = "wasserstein_1d"
    family = _FAMILY
    args = (Arg("u", ("N",), grad=True, doc="first sample (values on the real line)"),
            Arg("v", ("N",), grad=True, doc="second sample, the same size N"))
    formula = r"W = \tfrac1N \sum_k |u_{(k)} - v_{(k)}|"
    gradient = (r"\partial W/\partial u_i = \mathrm{sign}(u_{(k)} - v_{(k)})/N,\ k = "
                r"\mathrm{rank}(u_i);\ \partial W/\partial v_j = -\mathrm{sign}(u_{(k)} - "
                r"v_{(k)})/N,\ k = \mathrm{rank}(v_j)")
    reference = ("scipy.stats.wasserstein_distance (equal sizes, no weights); Villani, "
                 "Optimal Transport, Old and New (2009), remark 2.19; ties ranked by a "
                 "stable sort")

    def nonsmooth_distance(self, name, arrays):
        x, other = arrays[name], arrays["v" if name == "u" else "u"]
        rank = np.argsort(np.argsort(x, kind="stable"))
        pair = np.abs(x - np.sort(other)[rank])
        gaps = np.abs(x[:, None] - x[None, :]) + np.diag(np.full(x.size, np.inf))
        return np.minimum(pair, 0.5 * np.min(gaps, axis=1))

    def _evaluate(self, xp, a, need_grad):
        su, rank_u = _sorted_pairing(xp, a["u"])
        sv, rank_v = _sorted_pairing(xp, a["v"])
        d = su - sv
        value, factor = reduce(xp, xp.abs(d), "mean")
        if not need_grad:
            return value, None
        s = xp.sign(d) * factor
        return value, (xp.take(s, rank_u, axis=0), -xp.take(s, rank_v, axis=0))


def _hist(name, doc):
    return Arg(name, ("*", "K"), low=0.0, simplex=True, grad=True, doc=doc)


@register
class WassersteinHistogram(Loss):
    """Wasserstein-1 distance between two histograms on one uniform grid.

    Value per row (histograms on the last axis, ``K`` bins of width
    ``dx``)::

        W = dx * sum_{k < K-1} |P_k - Q_k|,   P_k = sum_{i <= k} p_i

    the L1 distance of the two CDFs, integrated between the bin centres
    (the last bin, where both CDFs reach their totals, is left out; for
    rows that sum to 1 its term is 0 anyway). Reduced over the leading axes
    by ``reduction``. For rows summing to 1 it equals
    ``scipy.stats.wasserstein_distance(grid, grid, p, q)`` with ``grid =
    dx * arange(K)``; scipy renormalises the weights, this loss does not
    (rows of another total are taken as given).

    Gradient: ``dW/dp_i = dx * sum_{i <= k < K-1} sign(P_k - Q_k)`` and
    ``dW/dq_i = -dW/dp_i`` (``sign(0) = 0``); the CDF differences are the
    cumulative sum of ``p - q``.

    Domain: ``p`` and ``q`` >= 0, same shape (*, K); ``dx > 0``.

    Examples
    --------
    >>> import numpy as np, ptyloss_xp as pl
    >>> p = np.array([1.0, 0.0, 0.0]); q = np.array([0.0, 0.0, 1.0])
    >>> v, (gp, gq) = pl.get("wasserstein_hist", dx=0.5).value_and_grad(p, q)
    >>> float(v), gp.tolist(), gq.tolist()      # the whole mass moves 2 bins of 0.5
    (1.0, [1.0, 0.5, 0.0], [-1.0, -0.5, -0.0])
    """

    name = "wasserstein_hist"
    family = _FAMILY
    args = (_hist("p", "first histogram (probability mass per bin), bins on the last axis"),
            _hist("q", "second histogram on the same grid, same shape as p"))
    params = {"dx": Param(1.0, low=0.0, low_open=True, doc="bin width of the grid"),
              "reduction": REDUCTION}
    param_cases = ({"dx": 0.25, "reduction": "sum"}, {"reduction": "none"})
    formula = (r"W = \Delta x \sum_{k<K-1} |P_k - Q_k|,\ P_k = \textstyle\sum_{i \le k} p_i,"
               r"\ Q_k = \textstyle\sum_{i \le k} q_i")
    gradient = (r"\partial W/\partial p_i = -\partial W/\partial q_i = \Delta x "
                r"\sum_{i \le k < K-1} \mathrm{sign}(P_k - Q_k)")
    reference = ("scipy.stats.wasserstein_distance(grid, grid, p, q) for normalised rows; "
                 "Vallender, Theory Probab. Appl. 18, 784 (1974)")

    def nonsmooth_distance(self, name, arrays):
        # A step in p_i moves every CDF difference from bin i on.
        d = np.abs(np.cumsum(arrays["p"] - arrays["q"], axis=-1))
        d[..., -1] = np.inf
        return np.flip(np.minimum.accumulate(np.flip(d, axis=-1), axis=-1), axis=-1)

    def _evaluate(self, xp, a, need_grad):
        p = a["p"]
        cdf_gap = xp.cumulative_sum(p - a["q"], axis=-1)[..., :-1]
        value, factor = reduce(xp, self.dx * xp.sum(xp.abs(cdf_gap), axis=-1), self.reduction)
        if not need_grad:
            return value, None
        s = xp.sign(cdf_gap)
        s = xp.concat([s, xp.zeros(s.shape[:-1] + (1,), dtype=p.dtype, device=device_of(p))],
                      axis=-1)
        # sum over k >= i: the total minus the cumulative sum before i.
        tail = xp.sum(s, axis=-1, keepdims=True) - xp.cumulative_sum(s, axis=-1) + s
        g = (self.dx * factor) * tail
        return value, (g, -g)
