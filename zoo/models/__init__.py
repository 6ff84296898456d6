"""Model families (hand-built ResNets, torchvision and timm namespaces), heads and weights."""
