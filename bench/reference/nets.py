"""Network blocks of dfv's models, in Python, at dfv's layouts and names.

Each class mirrors one in worker/models/nets.{h,cc} or gan_nets.{h,cc}, with
the same submodule names and Sequential indices, so a module's state_dict
keys are exactly the names dfv's trace gives its parameters and buffers
(worker/train/step_trace.h) and load_state_dict(strict=True) proves the
layout is the same. Only what 28x28 grey images (the examples) use is here.

Operations are written in dfv's order (e.g. mu + eps * exp(0.5 * logvar)) so
that with one thread the same ATen kernels run on the same values.
"""
import functools

import torch
from torch import nn
import torch.nn.functional as F

_MASK = (1 << 64) - 1


def _mix(x):
    """splitmix64's finaliser, as worker/step/step_context.cc's Mix."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


class StepNoise:
    """A training step's noise, drawn as dfv's StepContext draws it (one
    process): a CPU generator reseeded per step from (train.seed, step)."""

    def __init__(self):
        self.generator = torch.Generator()
        self.step = 0

    def begin(self, step, seed):
        self.step = step
        self.generator.manual_seed(_mix(seed ^ _mix(step)))

    def normal(self, n, item_shape):
        return torch.randn([n, *item_shape], generator=self.generator, dtype=torch.float32)

    def normal_like(self, like):
        return self.normal(like.size(0), list(like.shape[1:])).to(like.dtype)


def _instance_norm(channels):
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


class ConvEncoder(nn.Module):
    """5x5 stride-2 convolutions 1 -> 16 -> 32 -> 64 (28 -> 13 -> 6 -> 2),
    instance norm, ReLU; flattened (256 features)."""

    def __init__(self, channels=1):
        super().__init__()
        layers, cin = [], channels
        for out in (16, 32, 64):
            layers += [nn.Conv2d(cin, out, 5, stride=2, padding=1, bias=False), _instance_norm(out), nn.ReLU()]
            cin = out
        self.layers = nn.Sequential(*layers)
        self.feature_dim = 64 * 2 * 2

    def forward(self, x):
        return self.layers(x).flatten(1)


class DeconvTrunk(nn.Module):
    """[N, 128, 2, 2] -> [N, C, 28, 28]: 4x4 stride-2 transposed convolutions
    128 -> 32 -> 16 -> C (2 -> 6 -> 14 -> 28), instance norm, LeakyReLU(0.2),
    then sigmoid (or tanh)."""

    def __init__(self, channels=1, output="sigmoid"):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(128, 32, 4, stride=2, padding=0, bias=False), _instance_norm(32), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(32, 16, 4, stride=2, padding=0, bias=False), _instance_norm(16), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(16, channels, 4, stride=2, padding=1))
        self.output = output

    def forward(self, features):
        y = self.layers(features)
        return torch.sigmoid(y) if self.output == "sigmoid" else torch.tanh(y)


class SplitEncoder(nn.Module):
    """ConvEncoder, then linear heads for z's mean, z's log-variance and s."""

    def __init__(self, z_dim, s_dim, channels=1):
        super().__init__()
        self.trunk = ConvEncoder(channels)
        self.z_mu = nn.Linear(self.trunk.feature_dim, z_dim)
        self.z_logvar = nn.Linear(self.trunk.feature_dim, z_dim)
        self.s = nn.Linear(self.trunk.feature_dim, s_dim)

    def forward(self, x):
        h = self.trunk(x)
        return self.z_mu(h), self.z_logvar(h), self.s(h)


class SplitDecoder(nn.Module):
    """Linear z -> 256 and s -> 256 with LeakyReLU(0.2), concatenated into
    [N, 128, 2, 2], then DeconvTrunk with a sigmoid."""

    def __init__(self, z_dim, s_dim, channels=1):
        super().__init__()
        self.z_in = nn.Linear(z_dim, 256)
        self.s_in = nn.Linear(s_dim, 256)
        self.trunk = DeconvTrunk(channels)

    def forward(self, z, s):
        h = torch.cat([F.leaky_relu(self.z_in(z), 0.2), F.leaky_relu(self.s_in(s), 0.2)], 1)
        return self.trunk(h.view(-1, 128, 2, 2))


class _TransposeAsConvolution(torch.autograd.Function):
    """dfv's transposed convolution (worker/models/conv_transpose.cc): the
    input gradient of the convolution by the same weight, so oneDNN's
    convolution kernels serve it (the plain operator for outputs of fewer than
    16 channels); backward as a convolution and a weight gradient. The same
    ATen calls in the same order as dfv's."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding, output_padding):
        shape = [x.size(0), weight.size(1)] + [
            (x.size(2 + d) - 1) * stride[d] - 2 * padding[d] + weight.size(2 + d) + output_padding[d]
            for d in range(2)]
        if weight.size(1) < 16:
            out = torch.ops.aten.conv_transpose2d(x, weight, None, list(stride), list(padding), list(output_padding))
        else:
            out = torch.ops.aten.convolution_backward(
                x.contiguous(), torch.empty(shape), weight, None, list(stride), list(padding), [1, 1], False,
                [0, 0], 1, [True, False, False])[0]
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = list(stride), list(padding)
        return out

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous()
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution(grad, weight, None, ctx.stride, ctx.padding, [1, 1], False, [0, 0], 1)
        if ctx.needs_input_grad[1]:
            grad_weight = torch.ops.aten.convolution_backward(
                x.contiguous(), grad, weight, None, ctx.stride, ctx.padding, [1, 1], False, [0, 0], 1,
                [False, True, False])[1]
        return grad_x, grad_weight, None, None, None


def _conv_transpose_as_dfv(module, x):
    out = _TransposeAsConvolution.apply(x, module.weight, module.stride, module.padding, module.output_padding)
    return out if module.bias is None else out + module.bias.view(1, -1, 1, 1)


def transposed_convolutions_as_dfv(net):
    """Runs every nn.ConvTranspose2d of `net` as dfv's ConvTranspose2dOneDnn
    does (the same kernels, so replayed steps agree with dfv's to rounding
    noise); the plain layer is what the reference's scripts, and its timing,
    use. tests/models/conv_transpose_test.cc checks the two agree to float
    tolerance."""
    for m in net.modules():
        if isinstance(m, nn.ConvTranspose2d):
            m.forward = functools.partial(_conv_transpose_as_dfv, m)


def reparameterize(mu, logvar, eps):
    return mu + eps * torch.exp(0.5 * logvar)


def kl_divergence_sum(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


class GanGenerator(nn.Module):
    """DCGAN generator at 28x28: [N, d] as [N, d, 1, 1] -> 2w x 7 x 7 ->
    w x 14 x 14 -> C x 28 x 28; batch norm and ReLU, tanh output."""

    def __init__(self, input_dim, width, channels=1):
        super().__init__()
        self.input_dim = input_dim
        self.layers = nn.Sequential(
            nn.ConvTranspose2d(input_dim, 2 * width, 7, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.ConvTranspose2d(width, channels, 4, stride=2, padding=1))

    def forward(self, x):
        return torch.tanh(self.layers(x.view(x.size(0), self.input_dim, 1, 1)))


class GanTrunk(nn.Module):
    """DCGAN discriminator trunk at 28x28: 4x4 stride-2 convolutions C -> w ->
    2w (28 -> 14 -> 7), LeakyReLU(0.2), batch norm on the second; flattened."""

    def __init__(self, width, channels=1):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1, bias=True), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(2 * width),
            nn.LeakyReLU(0.2))
        self.feature_dim = 2 * width * 7 * 7

    def forward(self, x):
        return self.layers(x).flatten(1)


def adam(params, train, lr=None):
    """AdamFrom (worker/models/model.cc): train.lr and train.betas."""
    return torch.optim.Adam(params, lr=train["lr"] if lr is None else lr, betas=tuple(train["betas"]))


def update(loss, optimizer):
    """StepContext::Update in one process: zero, backward, step. A plain
    backward, as the published scripts write it (the cycle-consistent VAE's
    reverse cycle too: `reverse_cycle_loss.backward()` runs back through the
    decoder, whose gradients the encoder-only optimiser never uses). dfv's
    Update back-propagates only into the optimiser's parameters
    (`backward(inputs=...)`): the same gradients, less work."""
    optimizer.zero_grad(set_to_none=False)
    loss.backward()
    optimizer.step()


class Frozen:
    """While inside, the module's parameters take no gradient (gan_nets.h's
    FrozenParameters, mathieu.cc's FreezeScope)."""

    def __init__(self, module):
        self.params = [p for p in module.parameters() if p.requires_grad]

    def __enter__(self):
        for p in self.params:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.params:
            p.requires_grad_(True)
