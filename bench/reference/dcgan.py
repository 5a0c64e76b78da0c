"""`dcgan` (worker/models/dcgan.cc) in Python: DCGAN generator and
discriminator at 28x28, BCE with logits, d_steps discriminator updates then
g_steps generator updates per step, Adam for each."""
import torch
from torch import nn
import torch.nn.functional as F

import nets


class Discriminator(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.trunk = nets.GanTrunk(width)
        self.real_fake = nn.Linear(self.trunk.feature_dim, 1)

    def forward(self, images):
        return self.real_fake(self.trunk(images)).squeeze(1)


def bce_with_logits(logits, target):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def accuracy(logits, real):
    right = logits.detach() > 0 if real else logits.detach() < 0
    return right.to(torch.float).mean().item()


class Reference:
    def __init__(self, job, train_size, total_steps):
        params = job["model_params"]
        self.noise_dim = params["noise_dim"]
        self.d_steps, self.g_steps = params["d_steps"], params["g_steps"]
        self.generator = nets.GanGenerator(self.noise_dim, params["feature_maps"])
        self.discriminator = Discriminator(params["feature_maps"])
        self.g_opt = nets.adam(self.generator.parameters(), job["train"])
        self.d_opt = nets.adam(self.discriminator.parameters(), job["train"])

    def modules(self):
        return {"generator": self.generator, "discriminator": self.discriminator}

    def train_step(self, batch, noise):
        real = batch["images"] * 2.0 - 1.0
        n = real.size(0)
        sums = {}

        def add(metrics):
            for name, value in metrics.items():
                total, count = sums.get(name, (0.0, 0))
                sums[name] = (total + value, count + 1)

        for _ in range(self.d_steps):
            with torch.no_grad():
                fake = self.generator(noise.normal(n, [self.noise_dim]))
            logits_real = self.discriminator(real)
            logits_fake = self.discriminator(fake)
            loss = bce_with_logits(logits_real, 1.0) + bce_with_logits(logits_fake, 0.0)
            nets.update(loss, self.d_opt)
            add({"d_loss": loss.item(), "d_acc_real": accuracy(logits_real, True),
                 "d_acc_fake": accuracy(logits_fake, False)})
        for _ in range(self.g_steps):
            with nets.Frozen(self.discriminator):
                fake = self.generator(noise.normal(n, [self.noise_dim]))
                loss = bce_with_logits(self.discriminator(fake), 1.0)
                nets.update(loss, self.g_opt)
            add({"g_loss": loss.item()})
        return {name: total / count for name, (total, count) in sums.items()}
