from torch import nn


def tinynet(num_classes: int = 3, width: int = 16) -> nn.Module:
    """A small CNN; any nn.Module factory taking num_classes works."""
    model = nn.Sequential()
    model.features = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(width, width * 2, 3, padding=1), nn.BatchNorm2d(width * 2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(width * 2, width * 4, 3, padding=1), nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    model.fc = nn.Linear(width * 4, num_classes)
    return model
