"""SatMAE models: tokenizer, masking, encoder, decoders, MAE, registry and checkpoints.

Importing this package registers every named model with timm.
"""

from satmae.models.bundle import load_encoder, load_mae, save_bundle
from satmae.models.config import DecoderConfig, EncoderConfig, MAEConfig, MaskingConfig
from satmae.models.encoder import EncoderFeatures, SatMAEEncoder
from satmae.models.inputs import ModelInputs
from satmae.models.mae import MAEOutput, MaskedAutoencoder
from satmae.models.registry import MODEL_CONFIGS, create_model

__all__ = [
    "MODEL_CONFIGS",
    "DecoderConfig",
    "EncoderConfig",
    "EncoderFeatures",
    "MAEConfig",
    "MAEOutput",
    "MaskedAutoencoder",
    "MaskingConfig",
    "ModelInputs",
    "SatMAEEncoder",
    "create_model",
    "load_encoder",
    "load_mae",
    "save_bundle",
]
