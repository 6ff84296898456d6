"""Export to ONNX and TorchScript, with a parity gate against eager PyTorch on real images."""
