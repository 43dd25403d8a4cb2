"""A VQ-VAE training script in the style of the DiVeQ paper's (its model, loop and checkpoint),
shrunk to run in seconds. Written for the official ``diveq`` package: the tests run it as it is
(the official package loaded by path) and with only the import line changed to
``diveq.compat.official``. Not a test module itself (no ``test_`` prefix).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

# Importing DiVeQ modules for quantization
from diveq import (
    DIVEQ,
    SFDIVEQ,
    DIVEQDetach,
    ProductDIVEQ,
    ProductSFDIVEQ,
    ResidualDIVEQ,
    ResidualSFDIVEQ,
    SFDIVEQDetach,
)

METHODS = (
    "diveq",
    "sfdiveq",
    "diveq_detach",
    "sfdiveq_detach",
    "residual_diveq",
    "residual_sfdiveq",
    "product_diveq",
    "product_sfdiveq",
)
# The paper's defaults warm SF-DiVeQ up for 1000 iterations; this run has a dozen.
SF_OPTIONS = {"skip_iters": 6, "avg_iters": 3}
COMPOSITE_SF_OPTIONS = {"skip_iters": 6, "avg_iters": 3, "replacement_iters": 3}


class Encoder(nn.Module):
    def __init__(self, in_channels, num_hiddens):
        super().__init__()
        self._conv_1 = nn.Conv2d(in_channels, num_hiddens // 2, 4, stride=2, padding=1)
        self._conv_2 = nn.Conv2d(num_hiddens // 2, num_hiddens, 4, stride=2, padding=1)

    def forward(self, x):
        return F.relu(self._conv_2(F.relu(self._conv_1(x))))


class Decoder(nn.Module):
    def __init__(self, in_channels, num_hiddens):
        super().__init__()
        self._conv_1 = nn.Conv2d(in_channels, num_hiddens, 3, stride=1, padding=1)
        self._conv_trans_1 = nn.ConvTranspose2d(num_hiddens, num_hiddens // 2, 4, 2, 1)
        self._conv_trans_2 = nn.ConvTranspose2d(num_hiddens // 2, 3, 4, 2, 1)

    def forward(self, x):
        x = F.relu(self._conv_trans_1(self._conv_1(x)))
        return self._conv_trans_2(x)


# ---------------- Creating the VQ-VAE model ----------------
class Model(nn.Module):
    def __init__(
        self, num_hiddens, num_embeddings, embedding_dim, num_codebooks, codebook_optimization
    ):
        super().__init__()
        self.codebook_optimization = codebook_optimization
        self.embedding_dim = embedding_dim
        self._encoder = Encoder(3, num_hiddens)
        self._pre_vq_conv = nn.Conv2d(num_hiddens, embedding_dim, kernel_size=1, stride=1)

        # ------------- Use DiVeQ modules for quantization -------------
        if self.codebook_optimization == "diveq":
            self.vq = DIVEQ(num_embeddings, embedding_dim)
        elif self.codebook_optimization == "sfdiveq":
            self.vq = SFDIVEQ(num_embeddings, embedding_dim, **SF_OPTIONS)
        elif self.codebook_optimization == "diveq_detach":
            self.vq = DIVEQDetach(num_embeddings, embedding_dim)
        elif self.codebook_optimization == "sfdiveq_detach":
            self.vq = SFDIVEQDetach(num_embeddings, embedding_dim, **SF_OPTIONS)
        # Residual VQ or Product VQ which use multiple codebooks for quantization
        elif self.codebook_optimization == "residual_diveq":
            self.vq = ResidualDIVEQ(num_embeddings, embedding_dim, num_codebooks)
        elif self.codebook_optimization == "residual_sfdiveq":
            self.vq = ResidualSFDIVEQ(
                num_embeddings, embedding_dim, num_codebooks, **COMPOSITE_SF_OPTIONS
            )
        elif self.codebook_optimization == "product_diveq":
            self.vq = ProductDIVEQ(num_embeddings, embedding_dim, num_codebooks)
        elif self.codebook_optimization == "product_sfdiveq":
            self.vq = ProductSFDIVEQ(
                num_embeddings, embedding_dim, num_codebooks, **COMPOSITE_SF_OPTIONS
            )
        self._decoder = Decoder(embedding_dim, num_hiddens)

    def forward(self, x):
        z = self._pre_vq_conv(self._encoder(x))
        z_permute = z.permute(0, 2, 3, 1).contiguous()  # Convert BCHW -> BHWC
        z_shape = z_permute.shape
        z_flat = z_permute.view(-1, self.embedding_dim)  # Flatten the input

        quantized, indices, perplexity = self.vq(z_flat)
        quantized = quantized.view(z_shape).permute(0, 3, 1, 2).contiguous()  # BHWC -> BCHW

        x_recon = self._decoder(quantized)
        return x_recon, indices, perplexity

    def inference(self, x):
        with torch.no_grad():
            z = self._pre_vq_conv(self._encoder(x))
            z_permute = z.permute(0, 2, 3, 1).contiguous()
            z_shape = z_permute.shape
            z_flat = z_permute.view(-1, self.embedding_dim)

            quantized, _indices, _perplexity = self.vq.inference(z_flat)
            quantized = quantized.view(z_shape).permute(0, 3, 1, 2).contiguous()

            x_recon = self._decoder(quantized)
            return x_recon


def main(codebook_optimization, data, checkpoint, steps=12, seed=0):
    """Train one model as the paper's loop does; save its state dict; return model and log."""
    torch.manual_seed(seed)
    model = Model(32, 16, 8, 2, codebook_optimization)
    optimizer = optim.Adam(model.parameters(), lr=2e-3, amsgrad=False)
    log = []
    model.train()
    # ---------------- Training Loop ----------------
    for i in range(steps):
        batch = data[(4 * i) % len(data) :][:4]
        optimizer.zero_grad()
        data_recon, _indices, perplexity = model(batch)
        recon_loss = F.mse_loss(data_recon, batch)
        recon_loss.backward()
        log.append(f"Recon_Loss={recon_loss.item():.6f} Perplexity={perplexity}")
        optimizer.step()
    # Visualization of reconstructed images (in train mode, as the paper's loop does)
    with torch.no_grad():
        recon_images = model.inference(data[:5])
    # Save the model
    torch.save(model.state_dict(), checkpoint)
    return model, log, recon_images
