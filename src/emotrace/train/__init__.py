"""Training (PyTorch): install with `pip install -e ".[train]"`. Inference never imports this."""
