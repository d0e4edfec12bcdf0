"""Self-checks for notebook 05 (SRResNet and SRGAN)."""
from __future__ import annotations

import torch

from . import run_check


def check_l1_optimal_guess(fn) -> bool | None:
    """Exercise 1: ``fn(samples)``: samples (N, C, H, W) = every high-res image consistent with one low-res input
    (N odd) -> the single (C, H, W) guess with the smallest mean *absolute* error (L1) to all of them. The notebook
    showed that the MSE answer is the mean; L1 losses are common in SR training too: what do they regress to?"""
    def check():
        g = torch.Generator().manual_seed(0)
        for shape in [(5, 1, 4, 4), (31, 3, 6, 5)]:
            samples = (torch.rand(shape, generator=g) * 1.5).round() / 1.5        # a few grey levels per pixel
            guess = fn(samples)
            if not isinstance(guess, torch.Tensor) or tuple(guess.shape) != shape[1:]:
                got = tuple(guess.shape) if isinstance(guess, torch.Tensor) else type(guess).__name__
                return False, f"for samples of shape {shape} expected a guess of shape {shape[1:]}, got {got}"
            best = samples.median(0).values
            err = lambda x: float((samples - x).abs().mean())                     # noqa: E731
            if err(guess) > err(best) + 1e-6:
                return False, (f"your guess has mean absolute error {err(guess):.4f}, but {err(best):.4f} is "
                               f"possible (the mean is the MSE answer: is it also the L1 answer?)")
        return True, ("the pixel-wise median: for two equally likely answers it is not unique, and for textures "
                      "it is still a pixel-wise compromise, not a texture: L1 regresses to a median, MSE to the mean")
    return run_check("L1-optimal guess", check)


def check_gan_losses(generator_loss, discriminator_loss) -> bool | None:
    """``generator_loss(fake_logits)`` = mean -log D(G(y)); ``discriminator_loss(real_logits, fake_logits)`` =
    mean -log D(x) + mean -log(1 - D(G(y))), with D = sigmoid(logit). Logits are (B,) tensors."""
    from ..srgan import adversarial_loss, discriminator_loss as reference_d

    def check():
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            real, fake = 3 * torch.randn(6, generator=g), 3 * torch.randn(6, generator=g)
            got_g, want_g = float(generator_loss(fake)), float(adversarial_loss(fake))
            if abs(got_g - want_g) > 1e-4:
                return False, f"generator loss: expected {want_g:.4f}, got {got_g:.4f} (non-saturating -log D(G(y)))"
            got_d, want_d = float(discriminator_loss(real, fake)), float(reference_d(real, fake))
            if abs(got_d - want_d) > 1e-4:
                return False, f"discriminator loss: expected {want_d:.4f}, got {got_d:.4f}"
        big = torch.tensor([200.0, -200.0])
        if not all(torch.isfinite(torch.as_tensor(v)) for v in (generator_loss(big), discriminator_loss(big, -big))):
            return False, "your losses overflow for large logits: use the log-sigmoid (logits) form"
        return True, "matches srgan.adversarial_loss and srgan.discriminator_loss, and is stable for large logits"
    return run_check("GAN losses", check)


def check_vgg_layer_index(fn) -> bool | None:
    """``fn(i, j)``: the index in torchvision's ``vgg19().features`` of phi_ij, the ReLU after the j-th convolution
    before the i-th max-pooling (each convolution is followed by a ReLU; each block ends with a max-pooling;
    blocks have 2, 2, 4, 4, 4 convolutions)."""
    from ..srgan import VGG19_LAYERS

    def check():
        for name, want in VGG19_LAYERS.items():
            i, j = int(name[3]), int(name[4])
            got = fn(i, j)
            if got != want:
                return False, f"phi_{i}{j}: expected index {want}, got {got}"
        return True, "VGG22 is features[8], VGG54 is features[35] (the SRGAN paper's two content layers)"
    return run_check("VGG layer index", check)
