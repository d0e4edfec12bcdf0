"""Self-checks for notebook 05 (SRResNet and SRGAN)."""
from __future__ import annotations

import torch

from . import answer, run_check


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


def stripes(n: int, amplitude: float, period: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(n, 1, size, size) vertical stripes 0.5 + amplitude sin(2 pi col / period + phase), uniformly random phases:
    every texture consistent with one low-res input, as in the notebook's section 1."""
    g = torch.Generator().manual_seed(seed)
    phases = 2 * torch.pi * torch.rand(n, generator=g)
    col = torch.arange(size).float()
    rows = 0.5 + amplitude * torch.sin(2 * torch.pi * col[None, :] / period + phases[:, None])
    return rows[:, None, None, :].expand(-1, 1, size, -1).contiguous()


def check_mse_floor(measure, predicted, amplitude: float = 0.2) -> bool | None:
    """Predict, then measure: ``predicted`` (a number or a function returning it), written before measuring, is the
    lowest pixel MSE any network can reach on stripes of ``amplitude`` with random phase; ``measure(samples)`` ->
    the MSE of the mean guess to every sample (a float), which the check runs on such stripes."""
    given = predicted

    def check():
        predicted = answer(given)
        if predicted is None or predicted is Ellipsis:
            raise NotImplementedError
        g = torch.Generator().manual_seed(2)
        samples = torch.rand(9, 1, 5, 5, generator=g)
        want = float(((samples - samples.mean(0)) ** 2).mean())
        got = float(measure(samples))
        if abs(got - want) > 1e-5:
            return False, f"measure: expected {want:.5f} on random samples, got {got:.5f} (MSE of the mean guess)"
        measured = float(measure(stripes(512, amplitude)))
        truth = amplitude ** 2 / 2
        if abs(float(predicted) - measured) > 0.1 * measured:
            return False, (f"you predicted {float(predicted):.4f}, measured {measured:.4f}: the mean guess is flat "
                           f"grey 0.5, so its error is the stripes' own variance; what is the mean of sin^2?")
        return True, (f"predicted {float(predicted):.4f}, measured {measured:.4f} (theory a^2 / 2 = {truth:.4f}): the "
                      f"floor is the variance of the detail the input cannot decide, whatever the network")
    return run_check("the MSE floor", check)


def _tiny_gan(seed: int):
    from ..srgan import ContentLoss, Discriminator, SRResNet

    torch.manual_seed(seed)
    G, D = SRResNet(4, n_blocks=1, channels=8, image_channels=1), Discriminator(image_channels=1, channels=4)
    return G, D, ContentLoss("mse")


def check_gan_step(fn) -> bool | None:
    """The paper's key step: ``fn(G, D, content, opt_g, opt_d, low, high, adversarial_weight)`` does one SRGAN
    step: a D update on real and generated patches in one batch (generated ones detached), then a G update with
    ``content(G(y), x) + adversarial_weight * -log D(G(y))``, D judging after its own update. Compared with
    ``srgan.gan_step`` by the parameters of both networks after two steps from the same start."""
    import copy

    from ..srgan import gan_step

    def params(net):
        return torch.cat([p.detach().flatten() for p in net.parameters()])

    def check():
        G, D, content = _tiny_gan(0)
        runs = {}
        for who, step in (("you", fn), ("reference", gan_step)):
            g, d = copy.deepcopy(G), copy.deepcopy(D)
            opt_g, opt_d = torch.optim.SGD(g.parameters(), lr=0.1), torch.optim.SGD(d.parameters(), lr=0.1)
            gen, after = torch.Generator().manual_seed(3), []
            for _ in range(2):
                high = torch.rand(2, 1, 48, 48, generator=gen)
                low = torch.nn.functional.avg_pool2d(high, 4)
                if who == "you":
                    step(g, d, content, opt_g, opt_d, low, high, 0.1)
                else:
                    step(g, d, content, opt_g, opt_d, low, high, adversarial_weight=0.1)
                after.append((params(g), params(d)))
            runs[who] = after
        close = lambda a, b: torch.allclose(a, b, atol=1e-5)                     # noqa: E731
        (g1, d1), (g2, d2) = runs["you"]
        (g1_ref, d1_ref), (g2_ref, d2_ref) = runs["reference"]
        if close(g2, g2_ref) and close(d2, d2_ref):
            return True, ("matches srgan.gan_step: D learns to tell x from G(y), then G moves to fool the updated D "
                          "while staying close to x in content")
        if close(d1, params(D)) or close(g1, params(G)):
            return False, "one of the networks did not change: step both optimisers (zero their gradients first)"
        if not close(d1, d1_ref):
            return False, ("D differs after one step: its loss is -log D(x) - log(1 - D(G(y))) on ONE batch "
                           "cat([x, G(y).detach()]) (shared BatchNorm statistics), and D is updated first")
        return False, ("D matches, G differs: judge cat([x, G(y)]) again with the updated D, and minimise content + "
                       "adversarial_weight * -log D(G(y)) (the generated half of the logits)")
    return run_check("one SRGAN step", check)
