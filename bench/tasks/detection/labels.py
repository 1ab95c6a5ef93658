"""PASCAL VOC's 20 detection classes in the devkit's order (FlatteNet Table X); shared by
the dataset, the synthetic writer and the VOC evaluation. Plain data, no torch."""

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
               "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person",
               "pottedplant", "sheep", "sofa", "train", "tvmonitor")

__all__ = ["VOC_CLASSES"]
