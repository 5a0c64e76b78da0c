"""`cycle_vae` (worker/models/cycle_vae.cc) in Python: the split encoder and
decoder; a forward cycle (reconstruct x1 and x2 from their own z and each
other's s, plus KL; Adam over encoder + decoder) and a reverse cycle (one
sampled z with the s of two unrelated images must encode back to the same
z mean; Adam over the encoder) per step."""
import torch
import torch.nn.functional as F

import nets


class Reference:
    def __init__(self, job, train_size, total_steps):
        params, loss = job["model_params"], job["train"]["loss"]
        self.z_dim, self.s_dim = params["style_dim"], params["class_dim"]
        self.encoder = nets.SplitEncoder(self.z_dim, self.s_dim)
        self.decoder = nets.SplitDecoder(self.z_dim, self.s_dim)
        self.auto_encoder_opt = nets.adam(list(self.encoder.parameters()) + list(self.decoder.parameters()),
                                          job["train"])
        self.reverse_cycle_opt = nets.adam(self.encoder.parameters(), job["train"])
        self.reconstruction_coef = loss["reconstruction"]
        self.reverse_cycle_coef = loss["reverse_cycle"]
        self.kl_coef = loss["kl"]

    def modules(self):
        return {"encoder": self.encoder, "decoder": self.decoder}

    def train_step(self, batch, noise):
        x1, x2 = batch["images"], batch["same_images"]
        n = x1.size(0)
        elements = float(x1.numel())

        mu, logvar, s = self.encoder(torch.cat([x1, x2], 0))
        eps = torch.cat([noise.normal(n, [self.z_dim]), noise.normal(n, [self.z_dim])], 0)
        z = nets.reparameterize(mu, logvar, eps)
        s_swapped = torch.cat([s[n:], s[:n]], 0)
        recon = self.decoder(z, s_swapped)
        rec = F.mse_loss(recon[:n], x1) + F.mse_loss(recon[n:], x2)
        kl = (nets.kl_divergence_sum(mu[:n], logvar[:n]) + nets.kl_divergence_sum(mu[n:], logvar[n:])) / elements
        forward_loss = self.reconstruction_coef * rec + self.kl_coef * kl
        nets.update(forward_loss, self.auto_encoder_opt)

        with torch.no_grad():
            s_pair = self.encoder(torch.cat([x1, batch["other_images"]], 0))[2]
        z_sample = noise.normal(n, [self.z_dim])
        regenerated = self.decoder(torch.cat([z_sample, z_sample], 0), s_pair)
        mu_back = self.encoder(regenerated)[0]
        reverse = F.l1_loss(mu_back[:n], mu_back[n:])
        nets.update(self.reverse_cycle_coef * reverse, self.reverse_cycle_opt)

        total = forward_loss.item() + self.reverse_cycle_coef * reverse.item()
        return {"loss": total, "reconstruction": rec.item(), "kl": kl.item(), "reverse_cycle": reverse.item()}
