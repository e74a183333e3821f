"""What `xai uncertainty` computes besides training: the MSP-condition grid evaluation, inverting an image
into the generator, realism (KID). Not named `uncertainty`: `xai_cli.uncertainty` is the API function."""
