"""What torchvision publishes about its models, shared by the tests of the torch definitions and of minicam's builders."""

# Parameter counts of torchvision's models: the "num_params" of each model's
# IMAGENET1K_V1 weights, listed on the torchvision docs page of the builder
# (https://pytorch.org/vision/stable/models/generated/torchvision.models.<name>.html;
# read there for alexnet, vgg16, resnet18, resnet34 and resnet50) and set in
# torchvision/models/{alexnet,vgg,resnet}.py, ``<Name>_Weights.IMAGENET1K_V1.meta``
# (read there for vgg11, vgg11_bn and vgg16_bn). Cross-check of the BatchNorm
# variants: the difference is 2 affine parameters per conv channel,
# vgg11_bn - vgg11 = 2 * (64 + 128 + 2*256 + 4*512) = 5504 and
# vgg16_bn - vgg16 = 2 * (2*64 + 2*128 + 3*256 + 6*512) = 8448.
PUBLISHED_NUM_PARAMS = {
    "alexnet": 61_100_840,
    "vgg11": 132_863_336,
    "vgg11_bn": 132_868_840,
    "vgg16": 138_357_544,
    "vgg16_bn": 138_365_992,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
}

# Minimum input side ("min_size") on the same docs pages.
PUBLISHED_MIN_SIZE = {"alexnet": 63, "vgg11": 32, "vgg11_bn": 32, "vgg16": 32, "vgg16_bn": 32,
                      "resnet18": 1, "resnet34": 1, "resnet50": 1}
