"""torch.nn layers that leave their parameters uninitialised at construction.

Every RemBERT parameter is initialised once, from the weight spec (`RemBertPreTrainedModel.init_weights`), or
read from a checkpoint; torch's own default initialisation would be work thrown away, twice for a 2 GB model.
"""

from __future__ import annotations

from torch import nn


class Linear(nn.Linear):
    def reset_parameters(self) -> None:
        pass


class Embedding(nn.Embedding):
    def reset_parameters(self) -> None:
        pass


class LayerNorm(nn.LayerNorm):
    def reset_parameters(self) -> None:
        pass
