"""The fine-tune engine: one loop for every registered model and dataset."""
