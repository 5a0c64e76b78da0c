"""`mathieu` (worker/models/mathieu.cc) in Python: split encoder and decoder,
Szabo's pair discriminator; per step A (auto-encoder: reconstruction from
own and same-class s, plus KL), B (g_steps_per_d_step generator updates:
cross-class swaps and prior styles must pass as real pairs) and C (the
discriminator, gated on its previous accuracy), three Adams."""
import torch
from torch import nn
import torch.nn.functional as F

import nets


class PairDiscriminator(nn.Module):
    """5x5 stride-2 convolutions 2 -> 32 -> 64 -> 128, instance norm,
    LeakyReLU(0.2), then a linear layer to two logits (1 = real pair)."""

    def __init__(self, channels=1):
        super().__init__()
        layers, cin = [], 2 * channels
        for out in (32, 64, 128):
            layers += [nn.Conv2d(cin, out, 5, stride=2, padding=1, bias=False),
                       nn.InstanceNorm2d(out, affine=False, track_running_stats=False), nn.LeakyReLU(0.2)]
            cin = out
        self.layers = nn.Sequential(*layers)
        self.output = nn.Linear(128 * 2 * 2, 2)

    def forward(self, a, b):
        return self.output(self.layers(torch.cat([a, b], 1)).flatten(1))


class Reference:
    def __init__(self, job, train_size, total_steps):
        params, loss = job["model_params"], job["train"]["loss"]
        self.z_dim, self.s_dim = params["style_dim"], params["class_dim"]
        self.gate_enabled = params["d_accuracy_gate"]
        self.accuracy_limit = params["d_accuracy_limit"]
        self.g_steps = params["g_steps_per_d_step"]
        self.reconstruction_coef, self.kl_coef = loss["reconstruction"], loss["kl"]
        self.adversarial_coef = loss["adversarial"]
        self.encoder = nets.SplitEncoder(self.z_dim, self.s_dim)
        self.decoder = nets.SplitDecoder(self.z_dim, self.s_dim)
        self.discriminator = PairDiscriminator()
        auto_encoder = lambda: list(self.encoder.parameters()) + list(self.decoder.parameters())
        self.auto_encoder_opt = nets.adam(auto_encoder(), job["train"])
        self.generator_opt = nets.adam(auto_encoder(), job["train"])
        self.discriminator_opt = nets.adam(self.discriminator.parameters(), job["train"])
        self.previous_accuracy = 0.0

    def modules(self):
        return {"encoder": self.encoder, "decoder": self.decoder, "discriminator": self.discriminator}

    def load_extra(self, state):
        self.previous_accuracy = float(state["state"]["previous_accuracy"][0])

    def train_step(self, batch, noise):
        x1, x2, x3 = batch["images"], batch["same_images"], batch["other_images"]
        n = x1.size(0)
        elements = float(x1.numel())
        real = torch.full([n], 1, dtype=torch.int64)
        fake = torch.full([n], 0, dtype=torch.int64)

        mu12, logvar12, s12 = self.encoder(torch.cat([x1, x2], 0))
        mu1, logvar1 = mu12[:n], logvar12[:n]
        z1 = nets.reparameterize(mu1, logvar1, noise.normal_like(mu1))
        recon = self.decoder(torch.cat([z1, z1], 0), s12)
        rec = F.mse_loss(recon[:n], x1) + F.mse_loss(recon[n:], x1)
        kl = nets.kl_divergence_sum(mu1, logvar1) / elements
        nets.update(self.reconstruction_coef * rec + self.kl_coef * kl, self.auto_encoder_opt)

        g_loss = None
        for repeat in range(self.g_steps):
            even = repeat % 2 == 0
            style_source, class_source = (x1, x3) if even else (x3, x1)
            c_mu, c_logvar, c_s = self.encoder(torch.cat([style_source, class_source], 0))
            mu, logvar, s = c_mu[:n], c_logvar[:n], c_s[n:]
            z = nets.reparameterize(mu, logvar, noise.normal_like(mu))
            z_prior = noise.normal(n, [self.z_dim])
            generated = self.decoder(torch.cat([z, z_prior], 0), torch.cat([s, s], 0))
            with nets.Frozen(self.discriminator):
                logits = self.discriminator(torch.cat([class_source, class_source], 0), generated)
                adversarial = F.cross_entropy(logits[:n], real) + F.cross_entropy(logits[n:], real)
                kl_g = nets.kl_divergence_sum(mu, logvar) / elements
                nets.update(self.adversarial_coef * adversarial + self.kl_coef * kl_g, self.generator_opt)
            g_loss = adversarial.detach()

        with torch.no_grad():
            c_mu, _, c_s = self.encoder(torch.cat([x3, x1], 0))
            fake_images = self.decoder(c_mu[:n], c_s[n:])
        train_discriminator = not self.gate_enabled or self.previous_accuracy < self.accuracy_limit
        with torch.set_grad_enabled(train_discriminator):
            logits = self.discriminator(torch.cat([x1, x1], 0), torch.cat([x2, fake_images], 0))
            d_loss = F.cross_entropy(logits[:n], real) + F.cross_entropy(logits[n:], fake)
        correct = logits.detach().argmax(1).eq(torch.cat([real, fake], 0))
        accuracy = correct.to(torch.float32).mean()
        if train_discriminator:
            nets.update(d_loss, self.discriminator_opt)
        self.previous_accuracy = accuracy.item()

        return {"reconstruction": rec.item(), "kl": kl.item(), "g_loss": g_loss.item(), "d_loss": d_loss.item(),
                "d_acc": accuracy.item(), "d_updates": 1.0 if train_discriminator else 0.0,
                "g_updates": float(self.g_steps)}
