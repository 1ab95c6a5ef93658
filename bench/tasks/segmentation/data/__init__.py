"""The segmentation datasets: Cityscapes, LIP and PASCAL-Context on one base."""
