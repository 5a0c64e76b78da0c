"""`vae` (worker/models/vae.cc) in Python: conv encoder -> (mu, log-variance),
reparameterised z, a projection to [128, 2, 2] and the transposed-conv
trunk; loss = reconstruction * summed SSE / n + kl * summed KL / n, one Adam."""
import torch
from torch import nn

import nets


class VaeNet(nn.Module):
    def __init__(self, latent_dim):
        super().__init__()
        self.encoder = nets.ConvEncoder()
        self.mu = nn.Linear(self.encoder.feature_dim, latent_dim)
        self.logvar = nn.Linear(self.encoder.feature_dim, latent_dim)
        self.project = nn.Linear(latent_dim, 128 * 2 * 2)
        self.trunk = nets.DeconvTrunk()

    def encode(self, x):
        h = self.encoder(x)
        return self.mu(h), self.logvar(h)

    def decode(self, z):
        return self.trunk(torch.relu(self.project(z)).view(-1, 128, 2, 2))


class Reference:
    def __init__(self, job, train_size, total_steps):
        self.net = VaeNet(job["model_params"]["latent_dim"])
        self.optimizer = nets.adam(self.net.parameters(), job["train"])
        loss = job["train"]["loss"]
        self.reconstruction_weight, self.kl_weight = loss["reconstruction"], loss["kl"]

    def modules(self):
        return {"vae": self.net}

    def train_step(self, batch, noise):
        x = batch["images"]
        n = float(x.size(0))
        mu, logvar = self.net.encode(x)
        recon = self.net.decode(nets.reparameterize(mu, logvar, noise.normal_like(mu)))
        sse = (recon - x).pow(2).sum() / n
        kl = nets.kl_divergence_sum(mu, logvar) / n
        loss = self.reconstruction_weight * sse + self.kl_weight * kl
        nets.update(loss, self.optimizer)
        pixels = float(x[0].numel())
        return {"loss": loss.item(), "reconstruction": sse.item(), "kl": kl.item(), "mse": sse.item() / pixels}
