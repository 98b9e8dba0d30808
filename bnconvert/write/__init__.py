"""Writers: canonical ``FoldedBatchNorm`` records in, one file format out."""
