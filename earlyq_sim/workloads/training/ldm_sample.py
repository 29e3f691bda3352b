"""Class-conditional DDIM sampling of fmnist28-ldm with classifier-free guidance.

Per step the UNet runs once on a doubled batch (null class, then the requested classes) and
the guided noise estimate is ``eps = eps_null + g * (eps_cond - eps_null)`` (Ho & Salimans
2022); ``g = 1`` is plain conditional sampling, ``g = 0`` unconditional. The final latent is
divided by the autoencoder's ``scaling_factor`` and decoded to pixels. Image ``j``'s starting
noise (and DDIM step noise when ``eta > 0``) comes from its own generator seeded from
``(seed, j)`` by ``samplers.image_generators``, so it does not depend on the batch size.
"""

from __future__ import annotations

import torch

from earlyq_sim.errors import UserError
from earlyq_sim.workloads.sampling.samplers import image_generators, set_steps
from earlyq_sim.workloads.training.ldm_models import UNET_CONFIG, read_json_config


def guided_eps(unet, cond, x: torch.Tensor, t, labels: torch.Tensor, guidance: float) -> torch.Tensor:
    """Classifier-free-guided noise estimate for latents ``x`` (B, 4, 7, 7) and ``labels`` (B,)."""
    null = torch.full_like(labels, cond.null_index)
    ctx = cond(torch.cat([null, labels]))
    eps_null, eps_c = unet(torch.cat([x, x]), t, encoder_hidden_states=ctx).sample.chunk(2)
    return eps_null + guidance * (eps_c - eps_null)


@torch.no_grad()
def sample_ldm(unet, ae, cond, labels, scaling_factor: float, seed: int = 0, num_steps: int = 50,
               guidance: float | None = None, eta: float = 0.0, batch_size: int = 64,
               scheduler_config: dict | None = None, return_latents: bool = False) -> torch.Tensor:
    """Images (N, 1, 28, 28) float32 in [-1, 1] for class ``labels`` (N ints in 0..9).

    ``guidance``: CFG scale g (default ``_earlyq.guidance_default`` of the UNet config);
    ``scheduler_config``: DDIM config (default ``_earlyq.scheduler``); ``return_latents``: also
    return the final scaled latents (N, 4, 7, 7) as a second value.
    """
    from diffusers import DDIMScheduler

    extra = read_json_config(UNET_CONFIG)[1]
    guidance = extra["guidance_default"] if guidance is None else float(guidance)
    labels = torch.as_tensor(labels, dtype=torch.long).flatten()
    if len(labels) < 1 or num_steps < 1 or batch_size < 1:
        raise UserError(f"sample_ldm: {len(labels)} labels, num_steps {num_steps}, batch_size {batch_size}; all must be >= 1")
    if int(labels.min()) < 0 or int(labels.max()) >= cond.num_classes:
        raise UserError(f"sample_ldm: labels must lie in 0..{cond.num_classes - 1}")
    sched = DDIMScheduler.from_config(dict(scheduler_config or extra["scheduler"]))
    set_steps(sched, "ddim", num_steps)
    c, size = int(unet.config.in_channels), unet.config.sample_size
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    images, latents = [], []
    for start in range(0, len(labels), batch_size):
        stop = min(len(labels), start + batch_size)
        gens = image_generators(seed, start, stop)
        x = torch.stack([torch.randn(c, h, w, generator=g) for g in gens]) * sched.init_noise_sigma
        lab = labels[start:stop]
        for t in sched.timesteps:
            eps = guided_eps(unet, cond, sched.scale_model_input(x, t), t, lab, guidance)
            x = sched.step(eps, t, x, eta=eta, generator=gens).prev_sample
        latents.append(x)
        images.append(ae.decode(x / scaling_factor).sample.clamp(-1, 1))
    out = torch.cat(images)
    return (out, torch.cat(latents)) if return_latents else out


def sample_trained(labels, seed: int = 0, num_steps: int = 50, guidance: float | None = None,
                   batch_size: int = 64, **weights) -> torch.Tensor:
    """:func:`sample_ldm` with the shipped weights (``weights``: paths for ``load_trained_ldm``)."""
    from earlyq_sim.workloads.training.ldm_models import load_trained_ldm

    m = load_trained_ldm(**weights)
    return sample_ldm(m["unet"], m["ae"], m["cond"], labels, m["scaling_factor"], seed, num_steps,
                      guidance, batch_size=batch_size)
