"""Training: the LightningModule, the trainer factory, one fitter per model family, the model store."""
