"""Widths that shrink an official-layout registry architecture to a tiny test model."""

TINY_OFFICIAL_SIZES = {
    "embed_dim": 64,
    "depth": 1,
    "num_heads": 2,
    "group_dim": 16,
    "decoder_dim": 32,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
    "decoder_group_dim": 8,
}
