"""Small networks written the way users write them (not torchvision): each `build_*` returns
(module, example_input). The CPU truth tests trace each and compare with a real step."""
import torch
from torch import nn
import torch.nn.functional as F


class MnistNet(nn.Module):
    """The PyTorch MNIST example: two convolutions from one input channel."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(x), dim=1)


class Recursive(nn.Module):
    """One block applied to its own output several times (shared weights)."""

    def __init__(self, depth=4):
        super().__init__()
        self.depth = depth
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.block = nn.Sequential(nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = self.stem(x)
        for _ in range(self.depth):
            x = self.block(x)
        return self.head(x.mean((2, 3)))


class ConvAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                                     nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU())
        self.decoder = nn.Sequential(nn.ConvTranspose2d(32, 16, 2, stride=2), nn.ReLU(),
                                     nn.ConvTranspose2d(16, 3, 2, stride=2), nn.Sigmoid())

    def forward(self, x):
        return self.decoder(self.encoder(x))


class GroupedBlock(nn.Module):
    """A ResNeXt-style residual block: 1x1, a grouped 3x3 (4 groups of 8 channels), 1x1."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.reduce = nn.Conv2d(32, 32, 1)
        self.grouped = nn.Conv2d(32, 32, 3, padding=1, groups=4)
        self.expand = nn.Conv2d(32, 32, 1)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = F.relu(self.stem(x))
        y = self.expand(F.relu(self.grouped(F.relu(self.reduce(x)))))
        return self.head(F.relu(x + y).mean((2, 3)))


class FourChannelReusedReLU(nn.Module):
    """Few channels, and one in-place ReLU module called after every convolution."""

    def __init__(self):
        super().__init__()
        self.act = nn.ReLU(inplace=True)
        self.c1 = nn.Conv2d(4, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 8, 3, padding=1)
        self.c3 = nn.Conv2d(8, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.act(self.c1(x))
        x = self.act(self.c2(x))
        x = self.act(self.c3(x))
        return self.fc(x.mean((2, 3)))


class LSTMTagger(nn.Module):
    def __init__(self, vocab=1000, embed=64, hidden=128, tags=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, tags)

    def forward(self, tokens):
        y, _ = self.lstm(self.embed(tokens))
        return self.out(y)


class BidirectionalLSTMTagger(nn.Module):
    """Two bidirectional layers: the second reads both directions' outputs (256 wide)."""

    def __init__(self, vocab=1000, embed=64, hidden=128, tags=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, tags)

    def forward(self, tokens):
        y, _ = self.lstm(self.embed(tokens))
        return self.out(y)


class PackedLSTMClassifier(nn.Module):
    """Variable-length sequences packed before the LSTM (lengths 20, 19, 18, ... down the batch),
    classified from the last hidden state."""

    def __init__(self, vocab=1000, embed=64, hidden=128, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, tokens):
        n, t = tokens.shape
        lengths = [max(1, t - i) for i in range(n)]
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True)
        _, (h, _) = self.lstm(packed)
        return self.out(h[-1])


class BidirectionalGRUTagger(nn.Module):
    """Two bidirectional GRU layers (ATen's own cells on a CPU: oneDNN takes only LSTMs)."""

    def __init__(self, vocab=1000, embed=64, hidden=96, tags=10):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, num_layers=2, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, tags)

    def forward(self, tokens):
        y, _ = self.gru(self.embed(tokens))
        return self.out(y)


class PackedBidirectionalLSTM(nn.Module):
    """Variable-length sequences packed before a bidirectional LSTM, classified from both
    directions' last hidden states."""

    def __init__(self, vocab=1000, embed=64, hidden=128, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, classes)

    def forward(self, tokens):
        n, t = tokens.shape
        lengths = [max(1, t - 2 * i) for i in range(n)]
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True)
        _, (h, _) = self.lstm(packed)
        return self.out(torch.cat([h[0], h[1]], 1))


class DepthwiseSeparable(nn.Module):
    """MobileNet-style blocks: a 3x3 depthwise convolution then a 1x1 pointwise one, at 24, 40
    and 96 channels (the last two strided), each with batch norm and ReLU6."""

    def __init__(self, widths=(24, 40, 96, 96), classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU6(inplace=True))
        blocks = []
        for i, (c_in, c_out) in enumerate(zip(widths, widths[1:])):
            blocks += [nn.Conv2d(c_in, c_in, 3, stride=1 if i == 0 else 2, padding=1, groups=c_in, bias=False),
                       nn.BatchNorm2d(c_in), nn.ReLU6(inplace=True),
                       nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU6(inplace=True)]
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(widths[-1], classes)

    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class ResNeXtBlocks(nn.Module):
    """Three ResNeXt-style bottlenecks: 1x1, a grouped 3x3 (32 groups of 4 channels, 8 groups
    of 12, then 32 groups of 8 with a stride), 1x1, batch norm, a residual."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        self.first = self._bottleneck(64, 128, 32, 1)
        self.second = self._bottleneck(64, 96, 8, 1)
        self.third = self._bottleneck(64, 256, 32, 2)
        self.project = nn.Conv2d(64, 64, 1, stride=2, bias=False)
        self.head = nn.Linear(64, classes)

    @staticmethod
    def _bottleneck(channels, width, groups, stride):
        return nn.Sequential(nn.Conv2d(channels, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
                             nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=groups, bias=False),
                             nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 1, bias=False),
                             nn.BatchNorm2d(channels))

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(x + self.first(x))
        x = F.relu(x + self.second(x))
        x = F.relu(self.project(x) + self.third(x))
        return self.head(x.mean((2, 3)))


class PackedGRUClassifier(nn.Module):
    """Variable-length sequences packed before a 2-layer GRU, classified from the last layer's
    final state."""

    def __init__(self, vocab=1000, embed=64, hidden=96, classes=5):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.gru = nn.GRU(embed, hidden, num_layers=2, batch_first=True)
        self.out = nn.Linear(hidden, classes)

    def forward(self, tokens):
        n, t = tokens.shape
        lengths = [max(1, t - 3 * i) for i in range(n)]
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(tokens), lengths, batch_first=True)
        _, h = self.gru(packed)
        return self.out(h[-1])


class ChannelsLastNorm(nn.Module):
    """LayerNorm over channels by permuting, as ConvNeXt does: it leaves the tensor channels-last."""

    def __init__(self, channels):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """A 7x7 depthwise convolution, then a pointwise MLP on the channels-last tensor."""

    def __init__(self, channels):
        super().__init__()
        self.dw = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.mlp = nn.Sequential(nn.Linear(channels, 2 * channels), nn.GELU(), nn.Linear(2 * channels, channels))

    def forward(self, x):
        y = self.mlp(self.norm(self.dw(x).permute(0, 2, 3, 1)))
        return x + y.permute(0, 3, 1, 2)


class TinyConvNeXt(nn.Module):
    """A patch stem, a block, a downsampling (norm then a strided convolution, whose output is
    channels-last because its input is), and a block on that output directly."""

    def __init__(self, channels=64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels, 2, stride=2), ChannelsLastNorm(channels))
        self.block1 = ConvNeXtBlock(channels)
        self.down = nn.Sequential(ChannelsLastNorm(channels), nn.Conv2d(channels, channels, 2, stride=2))
        self.block2 = ConvNeXtBlock(channels)
        self.head = nn.Linear(channels, 10)

    def forward(self, x):
        x = self.block2(self.down(self.block1(self.stem(x))))
        return self.head(x.mean((2, 3)))


class PatchClassifier(nn.Module):
    """A vision transformer's front: 16x16 patches of stride 16 embedded by one convolution, then
    an MLP over the tokens."""

    def __init__(self, dim=32):
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 16, stride=16)
        self.mlp = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        tokens = self.patch(x).flatten(2).transpose(1, 2)
        return self.head(self.mlp(tokens).mean(1))


class WindowAttention(nn.Module):
    """Swin's attention inside 4x4 windows: windows cut by view, permute and reshape (a copy),
    then matrix products over the heads (reshaped views of copies)."""

    def __init__(self, dim=32, heads=2, window=4):
        super().__init__()
        self.heads, self.window = heads, window
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, h, w, c = x.shape
        s = self.window
        win = x.view(b, h // s, s, w // s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, s * s, c)
        q, k, v = self.qkv(win).reshape(win.shape[0], s * s, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * (c // self.heads) ** -0.5).matmul(k.transpose(-2, -1)).softmax(-1)
        y = self.proj(attn.matmul(v).transpose(1, 2).reshape(win.shape[0], s * s, c))
        y = y.view(b, h // s, w // s, s, s, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return x + y


class TinySwin(nn.Module):
    """A patch stem, then two window-attention blocks of the same shapes."""

    def __init__(self, dim=32):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, stride=2)
        self.blocks = nn.Sequential(WindowAttention(dim), WindowAttention(dim))
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.blocks(self.stem(x).permute(0, 2, 3, 1))
        return self.head(x.mean((1, 2)))


class PermutedNorm(nn.Module):
    """Swin's stem: a patch convolution permuted to channels-last order, then a LayerNorm over the
    channels. The norm's input is not contiguous, so its kernel copies it, forward and backward."""

    def __init__(self, dim=32):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, stride=2)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        return self.head(self.norm(self.stem(x).permute(0, 2, 3, 1)).mean((1, 2)))


class ShiftedWindows(nn.Module):
    """Swin's shifted windows: the feature map rolled by half a window over height and width
    (one torch.roll over two dimensions), a layer, and rolled back."""

    def __init__(self, dim=32):
        super().__init__()
        self.stem = nn.Conv2d(3, dim, 2, stride=2)
        self.mix = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        x = self.stem(x).permute(0, 2, 3, 1).contiguous()
        x = self.mix(torch.roll(x, shifts=(-2, -2), dims=(1, 2)))
        return self.head(torch.roll(x, shifts=(2, 2), dims=(1, 2)).mean((1, 2)))


class SelfAttention(nn.Module):
    """A ViT-style block's attention: nn.MultiheadAttention, batch first, over 1,024 tokens. In
    eval mode without gradients torch runs its fused kernel (_native_multi_head_attention: the
    scores materialised on a CPU); in training, the module path through scaled_dot_product_attention
    (the CPU's flash kernel and its per-thread tiles). `need_weights` as the caller passes it:
    torch's default keeps the scores and returns their mean over the heads."""

    def __init__(self, need_weights=False, dim=64, heads=4):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.need_weights = need_weights
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        y, _ = self.attn(x, x, x, need_weights=self.need_weights)
        return self.head((x + y).mean(1))


class SdpaHeads(nn.Module):
    """Attention written by hand: a fused q/k/v projection split into heads (views), then
    F.scaled_dot_product_attention, as most language models do it."""

    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.heads = heads
        self.head = nn.Linear(dim, 10)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.head(y.transpose(1, 2).reshape(b, t, d).mean(1))


class SpeechConv(nn.Module):
    """A keyword-spotting front end on raw audio: strided Conv1d + BatchNorm1d. ATen runs a 1-d
    convolution as a 2-d one of height 1 (was -17% in training: the 2-d kernels' copies missed)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 32, 9, stride=2, padding=4)
        self.b1 = nn.BatchNorm1d(32)
        self.c2 = nn.Conv1d(32, 64, 9, stride=2, padding=4)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.b1(self.c1(x)))
        return self.head(F.relu(self.c2(x)).mean(-1))


class ShortConv(nn.Module):
    """A sequence model's short causal convolution (Mamba, Hyena): features projected, transposed to
    channels first, a depthwise Conv1d, trimmed back. The transposed input is not contiguous, so
    ATen copies it, forward and backward (was -22% inference, -17% training)."""

    def __init__(self, dim=64, width=128):
        super().__init__()
        self.inp = nn.Linear(dim, width)
        self.conv = nn.Conv1d(width, width, 4, groups=width, padding=3)
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        h = self.conv(self.inp(x).transpose(1, 2))[..., : x.shape[1]]
        return self.out(F.silu(h).transpose(1, 2).mean(1))


class FourierLayer(nn.Module):
    """A Fourier neural operator layer: complex weights multiply the lowest modes of the input's
    2-d FFT. The weights must stay complex (a float cast of the model dropped their imaginary
    parts and the trace failed)."""

    def __init__(self, channels=16, modes=8):
        super().__init__()
        self.lift = nn.Conv2d(1, channels, 1)
        self.weights = nn.Parameter(torch.randn(channels, channels, modes, modes, dtype=torch.cfloat) * 0.02)
        self.modes = modes
        self.proj = nn.Conv2d(channels, 1, 1)

    def forward(self, x):
        h = self.lift(x)
        spectrum = torch.fft.rfft2(h)
        mixed = torch.zeros_like(spectrum)
        m = self.modes
        mixed[:, :, :m, :m] = torch.einsum("bixy,ioxy->boxy", spectrum[:, :, :m, :m], self.weights)
        return self.proj(F.gelu(torch.fft.irfft2(mixed, s=h.shape[-2:]) + h))


class LargeKernel(nn.Module):
    """A RepLKNet-style 13x13 depthwise convolution over 56x56 maps: its weight gradient runs
    im2col+GEMM, one thread's columns at this size (was +30% in training)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 32, 3, padding=1)
        self.large = nn.Conv2d(32, 32, 13, padding=6, groups=32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.large(F.relu(self.stem(x))).mean((2, 3)))


class ProjectedLSTM(nn.Module):
    """A 2-layer LSTM tagger with projections (proj_size): oneDNN does not take it on a CPU."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 64)
        self.lstm = nn.LSTM(64, 128, 2, batch_first=True, dropout=0.2, proj_size=32)
        self.head = nn.Linear(32, 5)

    def forward(self, ids):
        return self.head(self.lstm(self.embed(ids))[0][:, -1])


class Siamese(nn.Module):
    """One encoder applied to both halves of an image pair (shared weights, two calls). Each half is
    a width slice, not contiguous, so ATen copies it before the convolution (was -7% inference)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                     nn.Linear(16, 32))

    def forward(self, pair):
        left, right = pair[..., :32], pair[..., 32:]
        return F.cosine_similarity(self.encoder(left), self.encoder(right)).unsqueeze(1)


class PaddedEncoder(nn.Module):
    """A BERT-style classifier: token 0 is padding, masked in every layer. In inference torch packs
    the other tokens into nested tensors (data-dependent: the trace counts every token)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 64)
        layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True, dropout=0.1)
        self.encoder = nn.TransformerEncoder(layer, 2)
        self.head = nn.Linear(64, 2)

    def forward(self, ids):
        return self.head(self.encoder(self.embed(ids), src_key_padding_mask=ids == 0).mean(1))


class GRUTagger(nn.Module):
    """A 1-layer GRU over batch-first embeddings, tagging the last step: ATen projects the whole
    time-major (transposed) input at once and adds the bias in place (was +9% inference)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(1000, 64)
        self.gru = nn.GRU(64, 128, batch_first=True)
        self.head = nn.Linear(128, 5)

    def forward(self, ids):
        return self.head(self.gru(self.embed(ids))[0][:, -1])


class UnfoldLinear(nn.Module):
    """Patches by hand: reflect padding, unfold (im2col), then a Linear over the transposed columns,
    a non-contiguous 3-d input: ATen adds its bias in place (was +22% in training: out of place)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3 * 9, 16)
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        columns = F.unfold(F.pad(x, (1, 1, 1, 1), mode="reflect"), 3)
        return self.head(self.lin(columns.transpose(1, 2)).mean(1))


class TinyUNet(nn.Module):
    """A diffusion-style UNet level: GroupNorm and SiLU, a strided convolution down, nearest
    upsampling back and a skip concatenation."""

    def __init__(self):
        super().__init__()
        self.c1, self.g1 = nn.Conv2d(3, 32, 3, padding=1), nn.GroupNorm(8, 32)
        self.c2, self.g2 = nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.GroupNorm(8, 64)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.c3, self.out = nn.Conv2d(96, 32, 3, padding=1), nn.Conv2d(32, 3, 1)

    def forward(self, x):
        a = F.silu(self.g1(self.c1(x)))
        b = F.silu(self.g2(self.c2(a)))
        return self.out(F.silu(self.c3(torch.cat([self.up(b), a], 1))))


class CausalAttention(nn.Module):
    """Attention written out by hand, GPT-style: scores, a causal mask by masked_fill, softmax."""

    def __init__(self, dim=64, heads=4):
        super().__init__()
        self.qkv, self.heads = nn.Linear(dim, 3 * dim), heads
        self.proj, self.head = nn.Linear(dim, dim), nn.Linear(dim, 10)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in self.qkv(x).chunk(3, -1))
        scores = (q @ k.transpose(-2, -1)) / (d // self.heads) ** 0.5
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool, device=x.device), 1)
        y = (scores.masked_fill(mask, float("-inf")).softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        return self.head(self.proj(y).mean(1))


class ChannelsLastDownsample(nn.Module):
    """A convolution after a channel-wise LayerNorm (so on a channels-last tensor) that halves the
    resolution, with channel counts that are no whole number of 16-channel blocks."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 100, 3, padding=1)
        self.norm = ChannelsLastNorm(100)
        self.down = nn.Conv2d(100, 200, 2, stride=2)
        self.head = nn.Linear(200, 10)

    def forward(self, x):
        return self.head(self.down(self.norm(self.stem(x))).mean((2, 3)))


class FanOut(nn.Module):
    """One hidden layer read by three heads (multi-task): in backward autograd sums the heads'
    gradients for it in place, into the first to arrive (the trace once held a copy: +26%)."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(256, 2048)
        self.heads = nn.ModuleList([nn.Linear(2048, 16) for _ in range(3)])

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        return sum(head(h) for head in self.heads)


class FrozenBatchNorm(nn.Module):
    """Fine-tuning with batch-norm statistics frozen: the layer runs in eval mode inside a
    training step (its weights still train), so batch norm takes its eval path with gradients."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.bn = nn.BatchNorm2d(32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        self.bn.eval()
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def build_mnist():
    return MnistNet(), torch.zeros(1, 1, 28, 28)


def build_recursive():
    return Recursive(), torch.zeros(1, 3, 32, 32)


def build_autoencoder():
    return ConvAutoencoder(), torch.zeros(1, 3, 64, 64)


def build_grouped():
    return GroupedBlock(), torch.zeros(1, 3, 32, 32)


def build_reused_relu():
    return FourChannelReusedReLU(), torch.zeros(1, 4, 32, 32)


def build_lstm():
    return LSTMTagger(), torch.zeros(1, 20, dtype=torch.long)


def build_bidirectional_lstm():
    return BidirectionalLSTMTagger(), torch.zeros(1, 20, dtype=torch.long)


def build_packed_lstm():
    return PackedLSTMClassifier(), torch.zeros(1, 20, dtype=torch.long)


def build_bidirectional_gru():
    return BidirectionalGRUTagger(), torch.zeros(1, 20, dtype=torch.long)


def build_packed_bidirectional_lstm():
    return PackedBidirectionalLSTM(), torch.zeros(1, 20, dtype=torch.long)


def build_depthwise_separable():
    return DepthwiseSeparable(), torch.zeros(1, 3, 64, 64)


def build_resnext():
    return ResNeXtBlocks(), torch.zeros(1, 3, 32, 32)


def build_packed_gru():
    return PackedGRUClassifier(), torch.zeros(1, 20, dtype=torch.long)


def build_convnext():
    return TinyConvNeXt(), torch.zeros(1, 3, 32, 32)


def build_patches():
    return PatchClassifier(), torch.zeros(1, 3, 64, 64)


def build_windows():
    return TinySwin(), torch.zeros(1, 3, 32, 32)


def build_downsample():
    return ChannelsLastDownsample(), torch.zeros(1, 3, 8, 8)


def build_fan_out():
    return FanOut(), torch.zeros(1, 256)


def build_frozen_bn():
    return FrozenBatchNorm(), torch.zeros(1, 3, 32, 32)


def build_permuted_norm():
    return PermutedNorm(), torch.zeros(1, 3, 64, 64)


def build_shifted_windows():
    return ShiftedWindows(), torch.zeros(1, 3, 64, 64)


def build_self_attention():
    return SelfAttention(), torch.zeros(1, 1024, 64)


def build_attention_weights():
    return SelfAttention(need_weights=True), torch.zeros(1, 1024, 64)


def build_sdpa_heads():
    return SdpaHeads(), torch.zeros(1, 1024, 64)


def build_speech_conv():
    return SpeechConv(), torch.zeros(1, 1, 16000)


def build_unfold_linear():
    return UnfoldLinear(), torch.zeros(1, 3, 32, 32)


def build_unet():
    return TinyUNet(), torch.zeros(1, 3, 64, 64)


def build_causal_attention():
    return CausalAttention(), torch.zeros(1, 256, 64)


def build_short_conv():
    return ShortConv(), torch.zeros(1, 256, 64)


def build_fourier():
    return FourierLayer(), torch.zeros(1, 1, 64, 64)


def build_large_kernel():
    return LargeKernel(), torch.zeros(1, 3, 56, 56)


def build_projected_lstm():
    return ProjectedLSTM(), torch.zeros(1, 40, dtype=torch.long)


def build_siamese():
    return Siamese(), torch.zeros(1, 3, 32, 64)


def build_padded_encoder():
    return PaddedEncoder(), torch.full((1, 64), 999)  # ids below 1,000: hardly any padding


def build_heavily_padded_encoder():
    return PaddedEncoder(), torch.full((1, 64), 3)  # ids below 4: a quarter of the tokens are padding


def build_gru_tagger():
    return GRUTagger(), torch.zeros(1, 50, dtype=torch.long)
