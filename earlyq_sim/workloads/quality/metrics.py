"""Image-quality metrics: Frechet distance (FD), k-NN precision/recall, per-image PSNR and SSIM.

* FD (Heusel et al. 2017 form) on the shipped Fashion-MNIST classifier's 128-d penultimate
  features (``feature_net.py``), against shipped test-split statistics. Not Inception FID:
  numbers are comparable between runs of this tool only (see docs/metric_calibration.md).
* Precision / recall: k-NN manifolds of Kynkaanniemi et al. 2019 (NeurIPS), k=3.
* PSNR / SSIM per image of a quantized run against the full-precision run from the same seeds;
  SSIM per Wang et al. 2004: Gaussian window 11x11, sigma 1.5, K1=0.01, K2=0.03, L=255,
  'valid' window positions, mean of the SSIM map.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from earlyq_sim.errors import UserError

SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0


# ---- Frechet distance -----------------------------------------------------------------------
def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` (float64) of features ``(N, D)``, N >= 2."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise UserError(f"features: shape {f.shape} not allowed; allowed (N, D) with N >= 2 images")
    return f.mean(0), np.cov(f, rowvar=False)


def _psd_sqrt(a: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via eigh (negative round-off clipped)."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """``|mu1-mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))`` for Gaussians N(mu1, S1), N(mu2, S2).

    Uses ``tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2)))``: the inner matrix is
    symmetric PSD, so eigh is stable where ``scipy.linalg.sqrtm(S1 @ S2)`` can return complex
    round-off for near-singular covariances.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise UserError(f"frechet_distance: shapes mu {mu1.shape}/{mu2.shape}, sigma {s1.shape}/{s2.shape} do not match")
    r1 = _psd_sqrt(s1)
    inner = np.linalg.eigvalsh((r1 @ s2 @ r1 + (r1 @ s2 @ r1).T) / 2)
    tr_covmean = np.sqrt(np.clip(inner, 0, None)).sum()
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean, 0.0))


# ---- precision / recall ---------------------------------------------------------------------
def _kth_nn_radii(feats: torch.Tensor, k: int, batch: int = 2048) -> torch.Tensor:
    """Distance of each point to its k-th nearest other point (self excluded)."""
    radii = []
    for i in range(0, len(feats), batch):
        d = torch.cdist(feats[i:i + batch], feats)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # k+1: the 0 self-distance comes first
    return torch.cat(radii)


def _coverage(query: torch.Tensor, support: torch.Tensor, radii: torch.Tensor, batch: int = 2048) -> float:
    """Fraction of ``query`` points inside at least one ball (support_j, radii_j)."""
    inside = []
    for i in range(0, len(query), batch):
        d = torch.cdist(query[i:i + batch], support)
        inside.append((d <= radii[None, :]).any(dim=1))
    return float(torch.cat(inside).double().mean())


def knn_radii(features, k: int = 3) -> np.ndarray:
    """k-th nearest-neighbour distance of each row (self excluded), float64 ``(N,)``."""
    return _kth_nn_radii(torch.as_tensor(np.asarray(features), dtype=torch.float64), k).numpy()


def precision_recall(real_features, fake_features, k: int = 3,
                     real_radii: np.ndarray | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN radii, in [0, 1].

    Precision: share of fake samples inside the real manifold; recall: share of real samples
    inside the fake manifold. Needs more than ``k`` samples on each side. ``real_radii``:
    precomputed :func:`knn_radii` of the real features for this ``k`` (saves an N^2 pass).
    """
    real = torch.as_tensor(np.asarray(real_features), dtype=torch.float64)
    fake = torch.as_tensor(np.asarray(fake_features), dtype=torch.float64)
    if len(real) <= k or len(fake) <= k:
        raise UserError(f"precision_recall: {len(real)} real / {len(fake)} fake samples; allowed more than k={k} each")
    radii = torch.as_tensor(real_radii, dtype=torch.float64) if real_radii is not None else _kth_nn_radii(real, k)
    precision = _coverage(fake, real, radii)
    recall = _coverage(real, fake, _kth_nn_radii(fake, k))
    return precision, recall


# ---- PSNR / SSIM ----------------------------------------------------------------------------
def _as_batch(images, name: str) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3:
        raise UserError(f"{name}: shape {np.shape(images)} not allowed; allowed (N, H, W) or (N, 1, H, W)")
    return x.astype(np.float64)


def _check_pair(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_batch(a, "images"), _as_batch(b, "ref_images")
    if a.shape != b.shape:
        raise UserError(f"ref_images: shape {b.shape} does not match images {a.shape}; allowed the same seeds and size")
    return a, b


def psnr(images, ref_images, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-image PSNR in dB, ``10 log10(L^2 / MSE)``; ``inf`` where an image equals its reference."""
    a, b = _check_pair(images, ref_images)
    mse = ((a - b) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range ** 2 / mse)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> np.ndarray:
    """Normalised 2-D Gaussian window ``(size, size)``."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(ax ** 2) / (2 * sigma ** 2))
    g /= g.sum()
    return np.outer(g, g)


def ssim(images, ref_images, data_range: float = DATA_RANGE) -> np.ndarray:
    """Per-image SSIM (Wang et al. 2004), mean over 'valid' 11x11 Gaussian windows; 1.0 if equal.

    Images must be at least 11x11 (16x16 gives a 6x6 SSIM map).
    """
    a, b = _check_pair(images, ref_images)
    if min(a.shape[1:]) < SSIM_WINDOW:
        raise UserError(f"images: size {a.shape[1:]} too small for SSIM; allowed at least {SSIM_WINDOW}x{SSIM_WINDOW}")
    w = torch.from_numpy(gaussian_window())[None, None]
    x, y = torch.from_numpy(a)[:, None], torch.from_numpy(b)[:, None]

    def filt(t):
        return F.conv2d(t, w)

    mx, my = filt(x), filt(y)
    sxx = filt(x * x) - mx * mx
    syy = filt(y * y) - my * my
    sxy = filt(x * y) - mx * my
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    smap = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return smap.mean(dim=(1, 2, 3)).numpy()


# ---- all metrics for a batch of generated images ----------------------------------------------
class MetricInputs:
    """Generated images, optional full-precision images from the same seeds, and what metrics
    share (features, precision/recall, per-image PSNR/SSIM), each computed once on first use."""

    def __init__(self, images_uint8, ref_images_uint8=None, k: int = 3, net=None, reference: dict | None = None):
        self.images = np.asarray(images_uint8)
        if self.images.dtype != np.uint8:
            raise UserError(f"images_uint8: dtype {self.images.dtype} not allowed; allowed uint8 (0..255)")
        self.ref_images, self.k, self._net, self._reference = ref_images_uint8, k, net, reference
        self._cache: dict = {}

    def _once(self, key, fn):
        if key not in self._cache:
            self._cache[key] = fn()
        return self._cache[key]

    def reference(self) -> dict:
        from earlyq_sim.workloads.quality.feature_net import load_reference
        return self._once("ref", lambda: self._reference if self._reference is not None else load_reference())

    def features(self) -> np.ndarray:
        from earlyq_sim.workloads.quality.feature_net import extract_features, load_feature_net
        return self._once("feats", lambda: extract_features(
            self.images, self._net if self._net is not None else load_feature_net()))

    def fd(self) -> float:
        ref = self.reference()
        mu, sigma = feature_stats(self.features())
        return frechet_distance(mu, sigma, ref["mu"], ref["sigma"])

    def precision_recall(self) -> tuple[float, float]:
        ref = self.reference()
        return self._once("pr", lambda: precision_recall(ref["features"], self.features(), k=self.k,
                                                         real_radii=ref.get(f"radii_k{self.k}")))

    def psnr(self) -> np.ndarray:
        return self._once("psnr", lambda: psnr(self.images, self.ref_images))

    def ssim(self) -> np.ndarray:
        return self._once("ssim", lambda: ssim(self.images, self.ref_images))

    def psnr_db_mean(self) -> float:
        p = self.psnr()
        finite = p[np.isfinite(p)]
        return float(finite.mean()) if finite.size else float("inf")


def quality_metrics(images_uint8, ref_images_uint8=None, k: int = 3, net=None,
                    reference: dict | None = None) -> dict:
    """Every registered metric (``metric_registry.METRICS``) of generated images.

    ``images_uint8``: ``(N, 16, 16)`` or ``(N, 1, 16, 16)`` uint8 samples (N >= 2; FD is biased
    upward for small N: see docs/metric_calibration.md for the scale at 2000 and 10000 samples).
    ``ref_images_uint8``: the full-precision run from the same seeds (optional; metrics marked
    ``vs_full_precision`` need it). Returns floats: ``n_images``, ``fd``, ``precision``,
    ``recall``, and with a reference ``psnr_db_mean``, ``ssim_mean``, plus ``psnr_db_median``,
    ``ssim_min`` and the per-image arrays ``psnr_db`` and ``ssim``.
    """
    from earlyq_sim.workloads.quality.metric_registry import METRICS

    x = MetricInputs(images_uint8, ref_images_uint8, k, net, reference)
    out = {"n_images": int(len(x.features()))}
    for m in METRICS.values():
        if ref_images_uint8 is not None or not m.vs_full_precision:
            out[m.name] = m.compute(x)
    if ref_images_uint8 is not None:
        out.update(psnr_db=x.psnr(), ssim=x.ssim(), ssim_min=float(x.ssim().min()),
                   psnr_db_median=float(np.median(x.psnr())))
    return out


# ---- optional standard Inception FID (local weights only) -------------------------------------
def inception_fid(images_uint8, ref_images_uint8, weights_path, batch_size: int = 50) -> float:
    """Inception FID via ``pytorch-fid`` from a LOCAL ``pt_inception-2015-12-05`` weights file.

    Never downloads: pytorch-fid's URL loader is replaced by ``torch.load(weights_path)`` for the
    duration of the build. Grey images are repeated to 3 channels; pytorch-fid resizes to 299.
    At 16x16 the numbers are far from published FIDs; use them only to relate to other tools.
    """
    import os

    try:
        from pytorch_fid import inception as pfi
    except ImportError:
        raise UserError("inception_fid: package 'pytorch-fid' is not installed; allowed: "
                        "pip install pytorch-fid, or use the shipped FD (quality_metrics)") from None
    if not os.path.isfile(weights_path):
        raise UserError(f"{weights_path}: Inception weights file not found; allowed a local pt_inception-2015-12-05 .pth file")
    original = pfi.load_state_dict_from_url
    pfi.load_state_dict_from_url = lambda *a, **k: torch.load(weights_path, map_location="cpu")
    try:
        net = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    finally:
        pfi.load_state_dict_from_url = original

    @torch.no_grad()
    def feats(u8):
        x = torch.from_numpy(_as_batch(u8, "images")).float()[:, None].repeat(1, 3, 1, 1) / 255.0
        return torch.cat([net(x[i:i + batch_size])[0].flatten(1) for i in range(0, len(x), batch_size)]).double().numpy()

    mu1, s1 = feature_stats(feats(images_uint8))
    mu2, s2 = feature_stats(feats(ref_images_uint8))
    return frechet_distance(mu1, s1, mu2, s2)
