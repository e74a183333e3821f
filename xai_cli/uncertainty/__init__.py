"""What `xai uncertainty` computes besides training: the MSP-condition grid evaluation."""
