"""`lord` (worker/models/lord.cc) in Python: latent optimisation of a class
code per class and a content code per training image through an AdaIN
generator (stage 1), then amortisation into a content and a class encoder
with a copy of the generator (stage 2, the last encoder_fraction of the
run's steps)."""
import math

import torch
from torch import nn
import torch.nn.functional as F

import nets

WIDTH1, WIDTH2 = 64, 32


class AdaInGenerator(nn.Module):
    def __init__(self, content_dim, class_dim, channels=1):
        super().__init__()
        self.fc1 = nn.Linear(content_dim, 256)
        self.fc2 = nn.Linear(256, 128 * 2 * 2)
        self.up1 = nn.ConvTranspose2d(128, WIDTH1, 4, stride=2, padding=0)
        self.up2 = nn.ConvTranspose2d(WIDTH1, WIDTH2, 4, stride=2, padding=0)
        self.out = nn.ConvTranspose2d(WIDTH2, channels, 4, stride=2, padding=1)
        self.modulation = nn.Linear(class_dim, 2 * (WIDTH1 + WIDTH2))

    @staticmethod
    def ada_in(x, gamma, beta):
        normalised = torch.instance_norm(x, None, None, None, None, True, 0.0, 1e-5, False)
        return normalised * (1 + gamma.unsqueeze(2).unsqueeze(3)) + beta.unsqueeze(2).unsqueeze(3)

    def forward(self, content, class_code):
        ada = self.modulation(class_code).split([WIDTH1, WIDTH1, WIDTH2, WIDTH2], 1)
        h = F.leaky_relu(self.fc1(content), 0.2)
        h = F.leaky_relu(self.fc2(h), 0.2).view(-1, 128, 2, 2)
        h = F.leaky_relu(self.ada_in(self.up1(h), ada[0], ada[1]), 0.2)
        h = F.leaky_relu(self.ada_in(self.up2(h), ada[2], ada[3]), 0.2)
        return torch.sigmoid(self.out(h))


class CodeEncoder(nn.Module):
    def __init__(self, code_dim):
        super().__init__()
        self.trunk = nets.ConvEncoder()
        self.hidden = nn.Linear(self.trunk.feature_dim, 256)
        self.out = nn.Linear(256, code_dim)

    def forward(self, x):
        return self.out(F.leaky_relu(self.hidden(self.trunk(x)), 0.2))


class LatentCodes(nn.Module):
    def __init__(self, num_classes, class_dim, train_size, content_dim):
        super().__init__()
        self.class_codes = nn.Embedding(num_classes, class_dim)
        self.content_codes = nn.Embedding(train_size, content_dim)


class Reference:
    def __init__(self, job, train_size, total_steps, num_classes=10):
        params, train, loss = job["model_params"], job["train"], job["train"]["loss"]
        content_dim, class_dim = params["content_dim"], params["class_dim"]
        self.content_noise = params["content_noise"]
        self.loss_kind = params["reconstruction_loss"]
        self.cosine = params["lr_schedule"] == "cosine"
        self.min_lr = params["min_lr"]
        self.generator_lr = train["lr"]
        self.embedding_lr = train["lr"] * params["embedding_lr_scale"]
        self.encoder_lr = params["encoder_lr"]
        self.reconstruction_coef = loss["reconstruction"]
        self.content_l2_coef = loss["content_l2"]
        self.code_regression_coef = loss["code_regression"]
        self.generator = AdaInGenerator(content_dim, class_dim)
        self.codes = LatentCodes(num_classes, class_dim, max(train_size, 1), content_dim)
        self.content_encoder = CodeEncoder(content_dim)
        self.class_encoder = CodeEncoder(class_dim)
        self.amortized_generator = AdaInGenerator(content_dim, class_dim)
        betas = tuple(train["betas"])
        self.latent_opt = torch.optim.Adam([
            {"params": self.generator.parameters(), "lr": self.generator_lr, "betas": betas},
            {"params": self.codes.parameters(), "lr": self.embedding_lr, "betas": betas}], lr=self.generator_lr)
        self.amortized_opt = torch.optim.Adam(
            list(self.content_encoder.parameters()) + list(self.class_encoder.parameters()) +
            list(self.amortized_generator.parameters()), lr=self.encoder_lr, betas=betas)
        # The stage boundary, as lord.cc derives it from the run's step count.
        stage2 = max(1, math.floor(params["encoder_fraction"] * total_steps + 0.5))  # llround
        self.amortization_start = max(min(1, total_steps), total_steps - stage2)
        self.total_steps = total_steps
        self.amortization_started = False

    def modules(self):
        return {"generator": self.generator, "codes": self.codes, "content_encoder": self.content_encoder,
                "class_encoder": self.class_encoder, "amortized_generator": self.amortized_generator}

    def load_extra(self, state):
        self.amortization_started = bool(state["state"]["amortization_started"][0])

    def scheduled_rate(self, initial, step, steps):
        if not self.cosine or steps <= 0:
            return initial
        progress = min(max(step / steps, 0.0), 1.0)
        floor = min(self.min_lr, initial)
        return floor + (initial - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))

    def reconstruction_loss(self, output, target):
        if self.loss_kind == "l1":
            return F.l1_loss(output, target)
        if self.loss_kind == "l2":
            return F.mse_loss(output, target)
        return F.l1_loss(output, target) + F.mse_loss(output, target)

    def train_step(self, batch, noise):
        if noise.step < self.amortization_start:
            return self.latent_step(batch, noise)
        return self.amortized_step(batch, noise)

    def latent_step(self, batch, noise):
        x = batch["images"]
        generator_lr = self.scheduled_rate(self.generator_lr, noise.step, self.amortization_start)
        self.latent_opt.param_groups[0]["lr"] = generator_lr
        self.latent_opt.param_groups[1]["lr"] = self.scheduled_rate(self.embedding_lr, noise.step,
                                                                   self.amortization_start)
        content = self.codes.content_codes(batch["indices"])
        noisy = content + self.content_noise * noise.normal_like(content) if self.content_noise > 0 else content
        output = self.generator(noisy, self.codes.class_codes(batch["labels"]))
        rec = self.reconstruction_loss(output, x)
        penalty = content.pow(2).sum(1).mean()
        loss = self.reconstruction_coef * rec + self.content_l2_coef * penalty
        nets.update(loss, self.latent_opt)
        return {"loss": loss.item(), "reconstruction": rec.item(), "content_l2": penalty.item(),
                "code_regression": 0.0, "stage": 1.0, "lr": generator_lr}

    def amortized_step(self, batch, noise):
        if not self.amortization_started:
            with torch.no_grad():
                for target, source in zip(self.amortized_generator.parameters(), self.generator.parameters()):
                    target.copy_(source)
            self.amortization_started = True
        x = batch["images"]
        lr = self.scheduled_rate(self.encoder_lr, noise.step - self.amortization_start,
                                 self.total_steps - self.amortization_start)
        self.amortized_opt.param_groups[0]["lr"] = lr
        with torch.no_grad():
            target_content = self.codes.content_codes(batch["indices"])
            target_class = self.codes.class_codes(batch["labels"])
            penalty = target_content.pow(2).sum(1).mean()
        content = self.content_encoder(x)
        class_code = self.class_encoder(x)
        rec = self.reconstruction_loss(self.amortized_generator(content, class_code), x)
        regression = F.mse_loss(content, target_content) + F.mse_loss(class_code, target_class)
        loss = self.reconstruction_coef * rec + self.code_regression_coef * regression
        nets.update(loss, self.amortized_opt)
        return {"loss": loss.item(), "reconstruction": rec.item(), "content_l2": penalty.item(),
                "code_regression": regression.item(), "stage": 2.0, "lr": lr}
