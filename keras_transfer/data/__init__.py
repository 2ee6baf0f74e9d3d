"""The data layer: datasets (folders, split folders, labels tables, arrays), splits, image decoding, augmentation."""
