"""The PyTorch machinery of train, oof and infer: datasets, transforms, models, training loop."""
