"""The detection dataset: PASCAL VOC in the devkit layout."""
