"""Export to ONNX, int8 ONNX, pt2 and TorchScript (and formats plugins add), each proven by a parity gate."""
