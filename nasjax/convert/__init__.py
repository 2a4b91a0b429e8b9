"""PyTorch -> Flax checkpoint converters (``nasjax.convert.ofa``: Once-for-All MobileNetV3). torch is imported
lazily: converting numpy state dicts needs no torch."""
