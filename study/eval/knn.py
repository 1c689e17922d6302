"""A second, independent digit classifier: k nearest neighbours on pixels.

Why a second one: mode counts on images come from a classifier, and a CNN trained on sharp digits
can mislabel blurry samples wholesale (seen here: the domain CNN saw 4-5 classes where kNN saw
9-10). A collapse verdict should not hinge on one extractor, so the report asks both to agree.
kNN shares nothing with the CNN but the training images: no learned weights, no augmentation,
another inductive bias (pixel distance). Its "confidence" is the share of the k neighbours that
vote for the winning label, the analogue of the CNN's softmax probability.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

K = 10           # neighbours; 10 votes make the confidence a multiple of 0.1
MAX_SIDE = 32    # larger images are average-pooled to 32 px: digits are natively 28 px


class PixelKNN:
    def __init__(self, train_x: torch.Tensor, train_y: torch.Tensor, k: int = K):
        self.k, self.channels = k, train_x.shape[1]
        self.x = self._flat(train_x.cpu())
        self.sq = self.x.pow(2).sum(1)
        self.y = train_y.cpu().long()
        self.num_classes = int(self.y.max()) + 1

    @staticmethod
    def _flat(x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        if x.shape[-1] > MAX_SIDE:
            x = F.avg_pool2d(x, x.shape[-1] // MAX_SIDE)
        return x.flatten(1)

    @torch.no_grad()
    def predict(self, x: torch.Tensor, batch: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
        """(labels, confidence) for single-channel images N x 1 x H x W in [-1, 1]."""
        labels, conf = [], []
        for xb in self._flat(x.cpu()).split(batch):
            d = self.sq[None, :] - 2 * xb @ self.x.T  # + |xb|^2, constant per row: irrelevant to ranking
            nn_y = self.y[d.topk(self.k, dim=1, largest=False).indices]
            votes = F.one_hot(nn_y, self.num_classes).sum(1)
            top = votes.max(1)
            labels.append(top.indices)
            conf.append(top.values.float() / self.k)
        return torch.cat(labels), torch.cat(conf)

    def predict_channels(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each channel read as its own digit (stacked MNIST): labels and confidences N x C."""
        n, c = x.shape[:2]
        labels, conf = self.predict(x.reshape(n * c, 1, *x.shape[2:]))
        return labels.view(n, c), conf.view(n, c)

    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float((self.predict(x)[0] == y.cpu()).float().mean())
