"""The pose datasets: COCO, MPII and LSP-extended person records on one top-down base."""
